/** A min-heap of events by (time, insertion order): same-time events run in FIFO order. */
export class EventQueue<T> {
  private times: number[] = [];
  private seqs: number[] = [];
  private items: T[] = [];
  private seq = 0;
  /** The time of the last popped event. */
  lastTime = 0;

  size(): number {
    return this.items.length;
  }

  peekTime(): number {
    return this.times[0]!;
  }

  push(time: number, item: T): void {
    const s = this.seq++;
    let i = this.items.length;
    this.times.push(time);
    this.seqs.push(s);
    this.items.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(time, s, this.times[p]!, this.seqs[p]!)) break;
      this.move(p, i);
      i = p;
    }
    this.set(i, time, s, item);
  }

  pop(): T | undefined {
    const n = this.items.length;
    if (n === 0) return undefined;
    const top = this.items[0]!;
    this.lastTime = this.times[0]!;
    const t = this.times.pop()!;
    const s = this.seqs.pop()!;
    const item = this.items.pop()!;
    if (n > 1) {
      let i = 0;
      const size = n - 1;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= size) break;
        const r = l + 1;
        let c = l;
        if (r < size && this.less(this.times[r]!, this.seqs[r]!, this.times[l]!, this.seqs[l]!))
          c = r;
        if (!this.less(this.times[c]!, this.seqs[c]!, t, s)) break;
        this.move(c, i);
        i = c;
      }
      this.set(i, t, s, item);
    }
    return top;
  }

  private less(t1: number, s1: number, t2: number, s2: number): boolean {
    return t1 < t2 || (t1 === t2 && s1 < s2);
  }

  private move(from: number, to: number): void {
    this.times[to] = this.times[from]!;
    this.seqs[to] = this.seqs[from]!;
    this.items[to] = this.items[from]!;
  }

  private set(i: number, t: number, s: number, item: T): void {
    this.times[i] = t;
    this.seqs[i] = s;
    this.items[i] = item;
  }
}

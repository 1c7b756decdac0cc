// Minimal types for the parts of opossum this bench uses (@types/opossum is not installed).
declare module "opossum" {
  export default class CircuitBreaker<R = unknown> {
    constructor(
      action: (...args: unknown[]) => Promise<R>,
      options?: { timeout?: number | false; resetTimeout?: number },
    );
    fire(...args: unknown[]): Promise<R>;
    readonly opened: boolean;
    shutdown(): void;
  }
}

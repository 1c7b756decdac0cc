/** Limits of the replicated store, checked before a request is proposed (see validate.ts). */
export const limits = {
  /** Longest key in bytes (keys are at least 1 byte). */
  maxKeyBytes: 8192,
  /** Largest value in bytes: 1.5 MiB, as etcd's default request limit. */
  maxValueBytes: 1.5 * 1024 * 1024,
  /** Most operations in a Txn (compares, and the larger branch), as etcd's --max-txn-ops. */
  maxTxnOps: 128,
  /** Longest lease TTL in seconds, as etcd's MaxLeaseTTL. */
  maxLeaseTtlSeconds: 9_000_000_000,
} as const;

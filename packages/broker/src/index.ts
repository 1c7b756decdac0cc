export {
  type BudgetMember,
  BufferBudget,
  MESSAGE_OVERHEAD_BYTES,
  messageBytes,
} from "./buffer-budget.ts";
export { BrokerError, type BrokerErrorCode } from "./errors.ts";
export { LmdbQueueStore, type RecoveredQueue } from "./lmdb-store.ts";
export { INBOX_PREFIX, PubSub } from "./pubsub.ts";
export { checkQueueName, Queues } from "./queues.ts";
export {
  MAX_SUBJECT_LENGTH,
  MAX_TOKEN_LENGTH,
  parseSubject,
  subjectMatches,
} from "./subject.ts";
export { type MatchResult, Sublist, type SublistEntry } from "./sublist.ts";
export {
  type BrokerMessage,
  type OverflowEvent,
  type OverflowPolicy,
  Subscription,
  type SubscriptionOptions,
} from "./subscription.ts";
export {
  type ConsumerSink,
  type Delivery,
  defaultQueueSettings,
  type QueueCounters,
  type QueueItem,
  type QueueJournal,
  type QueueSettings,
  type QueueStats,
  type StoredMessage,
  WorkQueue,
} from "./work-queue.ts";

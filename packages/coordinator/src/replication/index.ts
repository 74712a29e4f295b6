export { ActiveActive, type ActiveActiveOptions, leaseDirectory } from "./active-active.js";
export { type Fence, fencedFsOps, readSeal, sealPath, writeSeal } from "./fencing.js";
export { type FollowOptions, type FollowResult, followLog } from "./follower.js";
export { FileLogLease, LeaseLostError, type LeaseTiming, type LogLease, leaseTiming } from "./lease.js";
export { awaitRole, type ReplicaHooks } from "./replica.js";

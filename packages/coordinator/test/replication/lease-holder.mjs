// A lease holder in its own process, for the SIGSTOP test: takes the lease in argv[2], prints "HELD <epoch>",
// then checks it every 20 ms and prints "LOST <reason>" once it is gone.
import { FileLogLease, leaseTiming } from "../../dist/index.js";

const lease = new FileLogLease(process.argv[2], "child", leaseTiming(200));
lease.onLost((err) => {
  process.stdout.write(`LOST ${err.message}\n`);
  process.exit(0);
});
for (;;) {
  const epoch = await lease.tryAcquire();
  if (epoch !== undefined) {
    process.stdout.write(`HELD ${epoch}\n`);
    break;
  }
  await new Promise((r) => setTimeout(r, 10));
}
setInterval(() => {
  try {
    lease.assertHeld("check");
  } catch {
    // onLost reports it.
  }
}, 20);

// Preloaded into an agent process (NODE_OPTIONS=--require <this file>) to step its wall clock
// forward by PLUTUS_TEST_CLOCK_STEP_MS, as NTP or a restored VM steps a real one: Date.now() and
// new Date() read that much later; timers (monotonic) are unchanged. Used to make a lock look as
// old as a long suspension would, without waiting for it.
const stepMs = Number(process.env.PLUTUS_TEST_CLOCK_STEP_MS);
if (!Number.isSafeInteger(stepMs) || stepMs <= 0) {
  throw new Error(`clockStep.cjs: PLUTUS_TEST_CLOCK_STEP_MS must be a positive whole number of milliseconds, not ${process.env.PLUTUS_TEST_CLOCK_STEP_MS}`);
}
const RealDate = Date;
const now = () => RealDate.now() + stepMs;
class SteppedDate extends RealDate {
  constructor(...args) {
    if (args.length === 0) super(now());
    else super(...args);
  }
  static now() {
    return now();
  }
}
globalThis.Date = SteppedDate;

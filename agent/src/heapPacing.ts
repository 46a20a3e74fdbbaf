import { setFlagsFromString } from "node:v8";

/**
 * How far V8 lets the old generation grow past what its last full collection kept, in percent.
 *
 * A pass keeps 12–16 MB alive, but with 256 files in flight a file's objects and buffers outlive
 * the two scavenges that promote them, so they die in the old generation, which only a full
 * collection empties. V8's own factor (up to 4x what survived on a machine with memory to spare)
 * let 30–35 MB of such garbage, and the file buffers it points to, pile up between full
 * collections: 164–174 MB peak RSS on a 50,000-file backlog (bench/README.md, "Memory (issue 11)").
 * 20 % keeps the old generation close to what is alive. It is not a limit: the heap still grows
 * with what a pass really holds (a 10 MiB file being parsed), only full collections come sooner,
 * and they are cheap when little is alive.
 */
export const HEAP_GROWING_PERCENT = 20;

/** Applies HEAP_GROWING_PERCENT to this process (read by V8 at every full collection). */
export function keepOldGenerationNearLive(): void {
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}

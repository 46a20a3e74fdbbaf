/**
 * Bounds the bytes of file content held in memory at once, whatever `concurrency` is: a worker
 * takes its file's share before reading it and gives it back when the file is done. A file larger
 * than the whole budget waits until it can have all of it, then goes alone. First come, first
 * served, so a large file is not starved by small ones.
 */
export class ByteBudget {
  private available: number;
  private readonly waiting: { bytes: number; resolve: () => void }[] = [];

  constructor(readonly limit: number) {
    this.available = limit;
  }

  /** Resolves with the amount taken (capped at the limit), to be handed back to `give`. */
  async take(bytes: number): Promise<number> {
    const share = Math.min(Math.max(bytes, 0), this.limit);
    if (this.waiting.length === 0 && share <= this.available) {
      this.available -= share;
      return share;
    }
    await new Promise<void>((resolve) => this.waiting.push({ bytes: share, resolve }));
    return share;
  }

  give(bytes: number): void {
    this.available += bytes;
    while (this.waiting.length > 0 && this.waiting[0].bytes <= this.available) {
      const next = this.waiting.shift()!;
      this.available -= next.bytes;
      next.resolve();
    }
  }
}

import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A real second file system (tmpfs, mode 0700) mounted for the enclosing describe block: moves
 * onto it cross a volume boundary. Returns a getter for its mount point; unmounted and removed
 * after the block.
 */
export function useTmpfsVolume(name: string, size: string): () => string {
  let mountPoint = "";
  beforeAll(() => {
    mountPoint = mkdtempSync(join(tmpdir(), `${name}-`));
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size},mode=0700`, name, mountPoint]);
  });
  afterAll(() => {
    execFileSync("umount", [mountPoint]);
    rmSync(mountPoint, { recursive: true, force: true });
  });
  return () => mountPoint;
}

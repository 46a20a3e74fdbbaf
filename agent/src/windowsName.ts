/**
 * Can Windows (NTFS, through Win32-OpenSSH) store this file name? Returns the reason it cannot,
 * or undefined when it can.
 */
const RESERVED_DEVICE = /^(CON|PRN|AUX|NUL|COM[0-9¹²³]|LPT[0-9¹²³]|CONIN\$|CONOUT\$)$/i;
const FORBIDDEN_CHARACTERS = /[<>:"/\\|?*]/;
// Leaves room for the ".<8 hex>" conflict suffix within NTFS's 255 UTF-16 units.
export const MAX_NAME_LENGTH = 200;

export function windowsNameProblem(name: string): string | undefined {
  if (name.length === 0) return "empty file name";
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) return "file name contains a control character";
  const forbidden = FORBIDDEN_CHARACTERS.exec(name);
  if (forbidden) return `file name contains ${JSON.stringify(forbidden[0])}, which Windows does not allow`;
  if (/[. ]$/.test(name)) return "file name ends with a dot or space, which Windows drops";
  if (name.startsWith(" ")) return "file name starts with a space";
  const base = name.split(".")[0].trimEnd();
  if (RESERVED_DEVICE.test(base)) return `file name uses the reserved Windows device name ${base.toUpperCase()}`;
  if (name.length > MAX_NAME_LENGTH) return `file name is ${name.length} characters long; at most ${MAX_NAME_LENGTH} are accepted`;
  if (/[\uD800-\uDFFF]/.test(name.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ""))) return "file name contains an unpaired surrogate";
  return undefined;
}

/**
 * Where and why a text is not JSON (RFC 8259), described without quoting any of it: the reason
 * ends up in quarantine notes and log lines, and an order's content must never reach those.
 * Iterative, so any nesting depth is fine; linear in the text's length.
 */
export function describeJsonSyntaxError(text: string): string {
  const error = findJsonSyntaxError(text);
  if (!error) return "not accepted by the JSON parser";
  const { line, column } = lineAndColumn(text, error.offset);
  return `${error.problem} at line ${line}, column ${column}`;
}

export interface JsonSyntaxError {
  /** Offset of the offending character in the text (its length for "unexpected end"). */
  offset: number;
  problem: string;
}

const enum Expect {
  Value,
  Key,
  AfterValue,
}

/** The first syntax error in `text`, or undefined when it is one valid JSON value. */
export function findJsonSyntaxError(text: string): JsonSyntaxError | undefined {
  const containers: ("object" | "array")[] = [];
  let i = skipWhiteSpace(text, 0);
  let expect = Expect.Value;
  const fail = (offset: number, problem: string): JsonSyntaxError =>
    offset >= text.length ? { offset: text.length, problem: "unexpected end of input" } : { offset, problem };
  for (;;) {
    if (expect === Expect.Value) {
      const c = text[i];
      if (c === "{" || c === "[") {
        containers.push(c === "{" ? "object" : "array");
        i = skipWhiteSpace(text, i + 1);
        if (text[i] === (c === "{" ? "}" : "]")) {
          containers.pop();
          i++;
          expect = Expect.AfterValue;
        } else expect = c === "{" ? Expect.Key : Expect.Value;
        continue;
      }
      const end = c === '"' ? scanString(text, i) : c === "-" || (c >= "0" && c <= "9") ? scanNumber(text, i) : scanLiteral(text, i);
      if (typeof end !== "number") return fail(end.offset, end.problem);
      i = end;
      expect = Expect.AfterValue;
    } else if (expect === Expect.Key) {
      if (text[i] !== '"') return fail(i, "expected a double-quoted property name");
      const end = scanString(text, i);
      if (typeof end !== "number") return fail(end.offset, end.problem);
      i = skipWhiteSpace(text, end);
      if (text[i] !== ":") return fail(i, 'expected ":" after a property name');
      i = skipWhiteSpace(text, i + 1);
      expect = Expect.Value;
      continue;
    } else {
      i = skipWhiteSpace(text, i);
      const container = containers[containers.length - 1];
      if (container === undefined) return i < text.length ? { offset: i, problem: "unexpected character after the end of the JSON value" } : undefined;
      const close = container === "object" ? "}" : "]";
      if (text[i] === ",") {
        i = skipWhiteSpace(text, i + 1);
        expect = container === "object" ? Expect.Key : Expect.Value;
      } else if (text[i] === close) {
        containers.pop();
        i++;
      } else return fail(i, `expected "," or "${close}"`);
    }
  }
}

function skipWhiteSpace(text: string, i: number): number {
  while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  return i;
}

/** Offset after the closing quote of the string starting at `start`, or the error. */
function scanString(text: string, start: number): number | JsonSyntaxError {
  let i = start + 1;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === 0x22) return i + 1;
    if (code < 0x20) return { offset: i, problem: "control character inside a string" };
    if (code === 0x5c) {
      const escape = text[i + 1];
      if (escape === "u") {
        if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return { offset: i, problem: "invalid \\u escape in a string" };
        i += 6;
        continue;
      }
      if (escape === undefined || !'"\\/bfnrt'.includes(escape)) return { offset: i, problem: "invalid escape in a string" };
      i += 2;
      continue;
    }
    i++;
  }
  return { offset: text.length, problem: "unterminated string" };
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

function scanNumber(text: string, start: number): number | JsonSyntaxError {
  NUMBER.lastIndex = start;
  const match = NUMBER.exec(text);
  if (!match) return { offset: start, problem: "invalid number" };
  const end = start + match[0].length;
  // "01", "1.", "1e": the number stops early and the next character cannot follow it.
  if (end < text.length && /[0-9.eE+-]/.test(text[end])) return { offset: end, problem: "invalid number" };
  return end;
}

function scanLiteral(text: string, start: number): number | JsonSyntaxError {
  for (const literal of ["true", "false", "null"]) {
    if (text.startsWith(literal, start)) return start + literal.length;
  }
  return { offset: start, problem: "unexpected character" };
}

/** 1-based line and column (in characters) of `offset`. */
function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return { line, column: offset - lineStart + 1 };
}

import { sanitizeServerText } from "../../agent/src/courier";

describe("sanitizeServerText (a server's free text in a log line)", () => {
  it("keeps a plain message as it is", () => {
    expect(sanitizeServerText("Permission denied")).toBe("Permission denied");
  });

  it("replaces control characters, so the ERP cannot forge log lines or terminal escapes", () => {
    expect(sanitizeServerText('denied\n{"level":"info","event":"delivered"}\u001b[2J\u0085')).toBe('denied?{"level":"info","event":"delivered"}?[2J?');
  });

  it("bounds the length", () => {
    expect(sanitizeServerText("x".repeat(5000))).toBe(`${"x".repeat(200)}…`);
  });
});

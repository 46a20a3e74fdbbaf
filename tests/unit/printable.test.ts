import { hasControlCharacters, printable } from "../../agent/src/errors";

describe("printable: server text made safe for terminals, syslog and JSON state", () => {
  it("shows C0, DEL, C1 and bidi controls as escapes and leaves other text alone", () => {
    expect(printable("\x1b]0;owned\x07\r\nfake line\x1b[2J\x7f\x9b31m\u202eabc")).toBe("\\x1b]0;owned\\x07\\x0d\\x0afake line\\x1b[2J\\x7f\\x9b31m\\u{202e}abc");
    expect(printable("Müller – Bestellung 🛒 C:\\Plutus\\Inbox")).toBe("Müller – Bestellung 🛒 C:\\Plutus\\Inbox");
  });

  it("cuts long text and says how much was left out", () => {
    expect(printable("x".repeat(510), 500)).toBe(`${"x".repeat(500)}… (10 more characters)`);
  });

  it("hasControlCharacters agrees with printable, call after call (no regex state kept)", () => {
    for (const text of ["plain", "a\nb", "plutus-1-\x9b.part", "plain again", "\u2066x"]) {
      expect(hasControlCharacters(text)).toBe(printable(text) !== text);
      expect(hasControlCharacters(text)).toBe(printable(text) !== text);
    }
  });
});

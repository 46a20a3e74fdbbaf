import { windowsNameProblem, MAX_NAME_LENGTH } from "../../agent/src/windowsName";
import { isOrderFileName, jsonProblem } from "../../agent/src/orderFile";
import { conflictName } from "../../agent/src/courier";

describe("windowsNameProblem", () => {
  it.each([
    ["order-1.json"],
    ["Bestellung Müller 2024.json"],
    ["-leading-dash.json"],
    ["with space.json"],
    ["CONSOLE.json"],
    ["nul-order.json"],
    ["COM10.json"],
  ])("accepts %j", (name) => {
    expect(windowsNameProblem(name)).toBeUndefined();
  });

  it.each([
    ["a<b.json", 'file name contains "<", which Windows does not allow'],
    ["a>b.json", 'file name contains ">", which Windows does not allow'],
    ["a:b.json", 'file name contains ":", which Windows does not allow'],
    ['a"b.json', 'file name contains "\\"", which Windows does not allow'],
    ["a\\b.json", 'file name contains "\\\\", which Windows does not allow'],
    ["a|b.json", 'file name contains "|", which Windows does not allow'],
    ["a?b.json", 'file name contains "?", which Windows does not allow'],
    ["a*b.json", 'file name contains "*", which Windows does not allow'],
    ["a\nb.json", "file name contains a control character"],
    ["a\u007fb.json", "file name contains a control character"],
    ["order.json.", "file name ends with a dot or space, which Windows drops"],
    ["order.json ", "file name ends with a dot or space, which Windows drops"],
    [" order.json", "file name starts with a space"],
    ["CON.json", "file name uses the reserved Windows device name CON"],
    ["nul.json", "file name uses the reserved Windows device name NUL"],
    ["Aux.backup.json", "file name uses the reserved Windows device name AUX"],
    ["com1.json", "file name uses the reserved Windows device name COM1"],
    ["LPT9.json", "file name uses the reserved Windows device name LPT9"],
    ["prn .json", "file name uses the reserved Windows device name PRN"],
    ["x".repeat(MAX_NAME_LENGTH - 4) + ".json", `file name is ${MAX_NAME_LENGTH + 1} characters long; at most ${MAX_NAME_LENGTH} are accepted`],
  ])("rejects %j", (name, reason) => {
    expect(windowsNameProblem(name)).toBe(reason);
  });
});

describe("isOrderFileName", () => {
  it.each([
    ["order.json", true],
    ["ORDER.JSON", true],
    [".json", false],
    ["order.json.tmp", false],
    ["order.json~", false],
    ["order.txt", false],
  ])("%j -> %j", (name, expected) => {
    expect(isOrderFileName(name)).toBe(expected);
  });
});

describe("jsonProblem", () => {
  it.each([
    ["", "empty file"],
    ["   \n", "file holds only white space"],
    ["[1,2]", "an order must be a JSON object"],
    ["42", "an order must be a JSON object"],
    ["null", "an order must be a JSON object"],
  ])("rejects %j", (text, reason) => {
    expect(jsonProblem(Buffer.from(text))).toBe(reason);
  });

  it("names the JSON parser's complaint", () => {
    expect(jsonProblem(Buffer.from('{"a":'))).toMatch(/^invalid JSON: /);
  });

  it("rejects bytes that are not UTF-8", () => {
    expect(jsonProblem(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]))).toBe("content is not valid UTF-8");
  });

  it("tolerates a UTF-8 byte order mark", () => {
    expect(jsonProblem(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('{"orderId":"PL-1"}')]))).toBeUndefined();
  });
});

describe("conflictName", () => {
  it("inserts the first 8 hex digits of the SHA-256 before the extension", () => {
    expect(conflictName("order-17.json", "0123456789abcdef".repeat(4))).toBe("order-17.01234567.json");
    expect(conflictName("a.b.JSON", "deadbeef".repeat(8))).toBe("a.b.deadbeef.JSON");
  });
});

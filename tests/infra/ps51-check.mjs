// Windows PowerShell 5.1 compatibility check over the tree-sitter-powershell syntax tree. The Hyper-V
// host runs the lab's scripts with powershell.exe 5.1, which rejects PowerShell 7's operators and
// parameters, and whose file writes default to UTF-16LE (Out-File, >) or the ANSI code page
// (Set-Content). Prints one JSON line: [{file, problems: [{rule, line, column, text}]}].
//   node tests/infra/ps51-check.mjs <file.ps1|.psm1>...
import { readFileSync } from "node:fs";

const Parser = (await import("tree-sitter")).default;
const PowerShell = (await import("tree-sitter-powershell")).default;
const parser = new Parser();
parser.setLanguage(PowerShell);

/** Commands that do not exist in Windows PowerShell 5.1. */
const COMMANDS_7_ONLY = new Set(["join-string", "test-json", "get-error", "convertfrom-markdown", "show-markdown", "remove-alias", "remove-service", "get-uptime", "foreach-object-parallel"]);
/** Parameters that 5.1's version of a command does not have. */
const PARAMETERS_7_ONLY = {
  "convertfrom-json": ["-ashashtable", "-depth", "-noenumerate", "-datekind"],
  "convertto-json": ["-enumsasstrings", "-asarray", "-escapehandling"],
  "get-content": ["-asbytestream"],
  "set-content": ["-asbytestream"],
  "add-content": ["-asbytestream"],
  "foreach-object": ["-parallel", "-throttlelimit", "-asjob"],
  "split-path": ["-leafbase", "-extension"],
  "select-object": ["-skipindex"],
  "invoke-webrequest": ["-skipcertificatecheck", "-skiphttperrorcheck", "-resume", "-statuscodevariable"],
  "invoke-restmethod": ["-skipcertificatecheck", "-skiphttperrorcheck", "-resume", "-statuscodevariable"],
  "test-connection": ["-targetname", "-ping", "-tcpport"],
  "get-childitem": ["-followsymlink"],
  "import-module": ["-usewindowspowershell", "-skipeditioncheck"],
  "new-item": [],
};
/** -Encoding values 5.1 does not know. */
const ENCODINGS_7_ONLY = new Set(["utf8nobom", "utf8bom", "ansi"]);
/** Commands that write a file; each must say -Encoding (5.1's defaults: UTF-16LE or ANSI). */
const WRITERS = new Set(["out-file", "set-content", "add-content", "export-csv"]);

const problemsOf = (text) => {
  const tree = parser.parse(text, undefined, { bufferSize: Math.max(32 * 1024, text.length * 4) });
  const problems = [];
  const add = (rule, node, detail) =>
    problems.push({ rule, line: node.startPosition.row + 1, column: node.startPosition.column + 1, text: detail ?? text.slice(node.startIndex, Math.min(node.endIndex, node.startIndex + 60)) });
  const walk = (node) => {
    if (node.type === "ERROR" && /\?/.test(text.slice(node.startIndex, node.endIndex))) {
      add("operator-7", node, "?: ?? ??= ?. or ?[] (PowerShell 7 operators)");
      return;
    }
    if (node.type === "pipeline_chain_tail") add("pipeline-chain-7", node, "&& or || pipeline chain (PowerShell 7)");
    if (node.type === "redirection") {
      const operator = node.children.find((c) => c.type === "file_redirection_operator");
      const target = node.children.find((c) => c.type === "redirected_file_name");
      if (operator && !(target && /^\s*\$null\s*$/i.test(text.slice(target.startIndex, target.endIndex)))) {
        add("redirect-encoding", node, "> or >> to a file writes UTF-16LE on 5.1: write with an explicit encoding");
      }
    }
    if (node.type === "command") {
      const nameNode = node.childForFieldName("command_name");
      const name = nameNode ? text.slice(nameNode.startIndex, nameNode.endIndex).replace(/^.*\\/, "").toLowerCase() : "";
      const elements = node.childForFieldName("command_elements");
      const parts = elements ? elements.namedChildren.filter((c) => c.type !== "command_argument_sep") : [];
      const parameters = parts.filter((c) => c.type === "command_parameter").map((c) => ({ node: c, name: text.slice(c.startIndex, c.endIndex).replace(/:$/, "").toLowerCase() }));
      if (COMMANDS_7_ONLY.has(name)) add("command-7", nameNode, `${name} does not exist in Windows PowerShell 5.1`);
      for (const p of parameters) {
        const bad = PARAMETERS_7_ONLY[name];
        if (bad && bad.includes(p.name)) add("parameter-7", p.node, `${name} ${p.name} does not exist in Windows PowerShell 5.1`);
      }
      parts.forEach((part, i) => {
        if (part.type === "command_parameter" && /^-encoding:?$/i.test(text.slice(part.startIndex, part.endIndex))) {
          const value = parts[i + 1] ? text.slice(parts[i + 1].startIndex, parts[i + 1].endIndex).replace(/['"]/g, "").toLowerCase() : "";
          if (ENCODINGS_7_ONLY.has(value)) add("encoding-7", parts[i + 1], `-Encoding ${value} does not exist in Windows PowerShell 5.1`);
        }
      });
      if (WRITERS.has(name) && !parameters.some((p) => p.name === "-encoding")) add("write-encoding", nameNode, `${name} without -Encoding writes UTF-16LE or ANSI on 5.1`);
    }
    if (node.type === "invokation_expression") {
      const call = text.slice(node.startIndex, node.endIndex);
      const m = /^\[(?:System\.)?IO\.File\]::(WriteAllText|WriteAllLines|AppendAllText|AppendAllLines)\s*\(/i.exec(call);
      const args = node.descendantsOfType("argument_expression").filter((a) => a.parent && a.parent.parent === node.children.find((c) => c.type === "argument_list"));
      if (m && args.length < 3) add("write-encoding", node, `[IO.File]::${m[1]} without an encoding argument`);
    }
    if (node.type === "unary_expression" || node.type === "if_statement") {
      // A partition without a drive letter has DriveLetter [char]0, which 5.1 treats as true.
      const own = text.slice(node.startIndex, node.endIndex);
      const m = node.type === "unary_expression" ? /^-not\s+\$[\w:]+\.DriveLetter\s*$/i.exec(own) : /^if\s*\(\s*\$[\w:]+\.DriveLetter\s*\)/i.exec(own);
      if (m) add("driveletter-truthiness", node, "DriveLetter is [char]0 when there is none, which 5.1 treats as true: compare [int][char] with 0");
    }
    for (const child of node.children) walk(child);
  };
  walk(tree.rootNode);
  return problems;
};

const results = process.argv.slice(2).map((file) => ({ file, problems: problemsOf(readFileSync(file, "utf8")) }));
console.log(JSON.stringify(results));

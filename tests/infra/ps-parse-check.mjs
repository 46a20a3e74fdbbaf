// Parses PowerShell files with tree-sitter-powershell and prints, as one JSON line, every ERROR or
// MISSING node per file. Runs as a child process because the grammar's entry is an ES module with
// top-level await, which jest (CommonJS) cannot import.
//   node tests/infra/ps-parse-check.mjs <file.ps1>...
// The parser runtime is the grammar's peer dependency `tree-sitter`; PLUTUS_TREE_SITTER_MODULE may
// point at another copy of it (an absolute path to its index.js).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

async function loadParser() {
  try {
    return (await import("tree-sitter")).default;
  } catch (err) {
    const alt = process.env.PLUTUS_TREE_SITTER_MODULE;
    if (alt) return (await import(pathToFileURL(alt).href)).default;
    console.error(`cannot load the tree-sitter runtime (${err.message}); add it: npm install -D tree-sitter@^0.25.0`);
    process.exit(3);
  }
}

const Parser = await loadParser();
const PowerShell = (await import("tree-sitter-powershell")).default;
const parser = new Parser();
parser.setLanguage(PowerShell);

const results = [];
for (const file of process.argv.slice(2)) {
  const text = readFileSync(file, "utf8");
  // Large inputs need a buffer-size hint with the node binding.
  const tree = parser.parse(text, undefined, { bufferSize: Math.max(32 * 1024, text.length * 4) });
  const problems = [];
  const walk = (node) => {
    if (node.type === "ERROR" || node.isMissing) {
      problems.push({
        kind: node.isMissing ? `MISSING ${node.type}` : "ERROR",
        line: node.startPosition.row + 1,
        column: node.startPosition.column + 1,
        text: text.slice(node.startIndex, Math.min(node.endIndex, node.startIndex + 60)),
      });
    }
    if (node.hasError || node.isMissing) for (const child of node.children) walk(child);
  };
  walk(tree.rootNode);
  if (tree.rootNode.hasError && problems.length === 0) problems.push({ kind: "ERROR", line: 0, column: 0, text: "(tree has an error)" });
  results.push({ file, problems });
}
console.log(JSON.stringify(results));

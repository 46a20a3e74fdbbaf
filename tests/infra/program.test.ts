import { runProgram } from "./harness";

test("smoke", async () => {
  const run = await runProgram();
  console.log(run.resources.map((r) => `${r.type} ${r.name} parent=${r.parent.split("::").pop()} deps=${r.dependencies.map((d) => d.split("::").pop()).join(",")} dbr=${r.deleteBeforeReplace}`).join("\n"));
  console.log(JSON.stringify(run.outputs, null, 1).slice(0, 1500), run.secretOutputs);
  console.log(Object.keys(run.byName("web-vm-seed-run").inputs));
});

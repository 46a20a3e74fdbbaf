/*
 * Runs the whole Pulumi program (infra/index.ts) under pulumi.runtime.setMocks and records every
 * resource with its type, name, inputs (secrets unwrapped), parent, dependencies and options.
 * tls.PrivateKey is answered with a real ed25519 key made by node:crypto, in OpenSSH formats.
 */
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parse as parseYaml } from "yaml";

export const REPO = path.resolve(__dirname, "..", "..");

export interface KeyPair {
  publicKeyOpenssh: string;
  privateKeyOpenssh: string;
  privateKeyPem: string;
}

function sshString(b: Buffer | string): Buffer {
  const buf = typeof b === "string" ? Buffer.from(b) : b;
  const len = Buffer.alloc(4);
  len.writeUInt32BE(buf.length);
  return Buffer.concat([len, buf]);
}

/** A real ed25519 key pair in OpenSSH public and private formats. */
export function makeEd25519(comment = ""): KeyPair {
  const { publicKey, privateKey } = crypto.generateKeyPairSync("ed25519");
  const pub = (publicKey.export({ format: "jwk" }) as { x: string }).x;
  const priv = (privateKey.export({ format: "jwk" }) as { d: string }).d;
  const pubRaw = Buffer.from(pub, "base64url");
  const seed = Buffer.from(priv, "base64url");
  const blob = Buffer.concat([sshString("ssh-ed25519"), sshString(pubRaw)]);
  const check = crypto.randomBytes(4);
  let body = Buffer.concat([check, check, sshString("ssh-ed25519"), sshString(pubRaw), sshString(Buffer.concat([seed, pubRaw])), sshString(comment)]);
  const pad: number[] = [];
  for (let i = 1; (body.length + pad.length) % 8 !== 0; i++) pad.push(i);
  body = Buffer.concat([body, Buffer.from(pad)]);
  const nkeys = Buffer.alloc(4);
  nkeys.writeUInt32BE(1);
  const whole = Buffer.concat([Buffer.from("openssh-key-v1\0"), sshString("none"), sshString("none"), sshString(""), nkeys, sshString(blob), sshString(body)]);
  const b64 = whole.toString("base64").replace(/(.{70})/g, "$1\n").replace(/\n$/, "");
  return {
    publicKeyOpenssh: `ssh-ed25519 ${blob.toString("base64")}\n`,
    privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
  };
}

/** The dev stack's config as `pulumi.runtime.setAllConfig` wants it (objects as JSON text). */
export function devStackConfig(): Record<string, string> {
  const doc = parseYaml(fs.readFileSync(path.join(REPO, "Pulumi.dev.yaml"), "utf8")) as { config: Record<string, unknown> };
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc.config)) out[k] = typeof v === "string" ? v : JSON.stringify(v);
  return out;
}

export const SECRETS = {
  "plutus:windowsAdminPassword": "Adm1n-P@ss'w0rd;$(whoami)`x",
  "plutus:hostSshPrivateKey": "-----BEGIN OPENSSH PRIVATE KEY-----\nSECRETHOSTKEYMATERIALxyz123\n-----END OPENSSH PRIVATE KEY-----\n",
};

const fixtureBundles: string[] = [];
// Every test file that imports the harness removes the bundles it made.
if (typeof afterAll === "function") afterAll(() => { for (const dir of fixtureBundles.splice(0)) fs.rmSync(dir, { recursive: true, force: true }); });

/** Writes a bundle like `npm run build` does, in a fresh temporary folder (removed after the test file). */
export function makeFixtureBundle(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "plutus-bundle-"));
  fixtureBundles.push(dir);
  const files: Record<string, string> = {
    "plutus-sync.cjs": "#!/usr/bin/env node\nconsole.log('plutus-sync fixture');\n",
    "sync_plutus.sh": "#!/bin/sh\nexec node /opt/plutus-sync/plutus-sync.cjs run\n",
    "install.sh": "#!/bin/bash\necho install fixture\n",
  };
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const sums = Object.entries(files)
    .map(([name, text]) => `${crypto.createHash("sha256").update(text).digest("hex")}  ${name}`)
    .join("\n");
  fs.writeFileSync(path.join(dir, "SHA256SUMS"), `${sums}\n`);
  return dir;
}

export interface Recorded {
  type: string;
  name: string;
  inputs: Record<string, any>;
  urn: string;
  parent: string;
  dependencies: string[];
  /** Per top-level input, the URNs its value depends on (what deleteBeforeReplace follows). */
  propertyDependencies: Record<string, string[]>;
  deleteBeforeReplace: boolean;
  /** Input paths whose change replaces the resource (besides what the provider decides itself). */
  replaceOnChanges: string[];
  additionalSecretOutputs: string[];
  /** Top-level inputs that arrived as Pulumi secrets (unwrapped in `inputs`). */
  secretInputs: string[];
}

const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";
const SIG_KEY = "4dabf18193072939515e22adb298388d";

/** Replaces Pulumi's secret envelopes by their values; reports whether any was found. */
function unwrap(value: any, found: { secret: boolean }): any {
  if (Array.isArray(value)) return value.map((v) => unwrap(v, found));
  if (value && typeof value === "object") {
    if (value[SIG_KEY] === SECRET_SIG) {
      found.secret = true;
      return unwrap(value.value, found);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrap(v, found)]));
  }
  return value;
}

export interface ProgramRun {
  resources: Recorded[];
  outputs: Record<string, unknown>;
  secretOutputs: string[];
  keys: Map<string, KeyPair>;
  byName(name: string): Recorded;
}

const nameOfUrn = (urn: string) => urn.split("::").pop() ?? "";

/**
 * Runs infra/index.ts with the given config (default: dev stack + SECRETS + a fixture bundle).
 * Rejects with the program's error when it throws.
 */
export async function runProgram(config: Record<string, string | undefined> = {}): Promise<ProgramRun> {
  const fixtureBundle = "plutus:agentBundleDir" in config ? undefined : makeFixtureBundle();
  try {
    return await runProgramWith(config, fixtureBundle);
  } finally {
    // The program reads the bundle while it loads; the folder is not needed afterwards.
    if (fixtureBundle) fs.rmSync(fixtureBundle, { recursive: true, force: true });
  }
}

async function runProgramWith(config: Record<string, string | undefined>, fixtureBundle: string | undefined): Promise<ProgramRun> {
  const full: Record<string, string> = { ...devStackConfig(), ...SECRETS };
  if (fixtureBundle) full["plutus:agentBundleDir"] = fixtureBundle;
  for (const [k, v] of Object.entries(config)) {
    if (v === undefined) delete full[k];
    else full[k] = v;
  }
  const resources: Recorded[] = [];
  const keys = new Map<string, KeyPair>();
  let program: Record<string, unknown> = {};
  let pulumi: typeof import("@pulumi/pulumi") = undefined as never;
  let loadError: unknown;

  await new Promise<void>((resolve) => {
    jest.isolateModules(() => {
      pulumi = require("@pulumi/pulumi");
      const mocksModule = require("@pulumi/pulumi/runtime/mocks");
      const original = mocksModule.MockMonitor.prototype.registerResource;
      mocksModule.MockMonitor.prototype.registerResource = function (req: any, callback: any) {
        const parent = req.getParent() || "";
        const propertyDependencies: Record<string, string[]> = {};
        req.getPropertydependenciesMap().forEach((deps: any, key: string) => {
          propertyDependencies[key] = deps.getUrnsList();
        });
        resources.push({
          type: req.getType(),
          name: req.getName(),
          inputs: {},
          urn: "",
          parent,
          dependencies: req.getDependenciesList(),
          propertyDependencies,
          deleteBeforeReplace: req.getDeletebeforereplace(),
          replaceOnChanges: req.getReplaceonchangesList(),
          additionalSecretOutputs: req.getAdditionalsecretoutputsList(),
          secretInputs: [],
        });
        return original.call(this, req, callback);
      };
      pulumi.runtime.setMocks(
        {
          newResource(args) {
            const rec = [...resources].reverse().find((r) => r.name === args.name && r.type === args.type && r.urn === "");
            if (rec) {
              rec.inputs = {};
              for (const [k, v] of Object.entries(args.inputs ?? {})) {
                const found = { secret: false };
                rec.inputs[k] = unwrap(v, found);
                if (found.secret) rec.secretInputs.push(k);
              }
              rec.urn = `${args.type}::${args.name}`;
            }
            if (args.type === "tls:index/privateKey:PrivateKey") {
              const pair = makeEd25519();
              keys.set(args.name, pair);
              return { id: `${args.name}-id`, state: { ...args.inputs, ...pair, publicKeyPem: "", privateKeyPem: pair.privateKeyPem } };
            }
            return { id: `${args.name}-id`, state: { ...args.inputs, stdout: "", stderr: "" } };
          },
          call(args) {
            throw new Error(`unexpected call to ${args.token}`);
          },
        },
        "plutus",
        "dev",
        false,
      );
      const secretKeys = Object.keys(SECRETS).filter((k) => full[k] !== undefined);
      pulumi.runtime.setAllConfig(full, secretKeys);
      try {
        program = require("../../infra/index");
      } catch (err) {
        loadError = err;
      }
      resolve();
    });
  });
  if (loadError) throw loadError;

  const outputs: Record<string, unknown> = {};
  const secretOutputs: string[] = [];
  for (const [k, v] of Object.entries(program)) {
    if (pulumi.Output.isInstance(v)) {
      outputs[k] = await (v as any).promise();
      if (await (v as any).isSecret) secretOutputs.push(k);
    } else {
      outputs[k] = v;
    }
  }
  // Let registrations that outputs do not wait on finish.
  for (let stable = 0, last = -1; stable < 3; ) {
    await new Promise((r) => setTimeout(r, 20));
    if (resources.length === last && resources.every((r) => r.urn !== "")) stable++;
    else {
      stable = 0;
      last = resources.length;
    }
  }
  return {
    resources,
    outputs,
    secretOutputs,
    keys,
    byName(name: string) {
      const found = resources.filter((r) => r.name === name);
      if (found.length !== 1) throw new Error(`expected one resource named ${name}, found ${found.length}`);
      return found[0];
    },
  };
}

export { nameOfUrn };

/** Runs the tree-sitter check on files; returns problems per file. */
export function parsePowerShell(files: string[]): { file: string; problems: { kind: string; line: number; text: string }[] }[] {
  const { execFileSync } = require("node:child_process") as typeof import("node:child_process");
  const out = execFileSync(process.execPath, [path.join(__dirname, "ps-parse-check.mjs"), ...files], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], cwd: REPO });
  return JSON.parse(out);
}

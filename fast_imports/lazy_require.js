"use strict";
// The node half of fast_imports, preloaded (node --require, through NODE_OPTIONS) into the jsii kernel process by
// fast_imports/node_side.py. Loading a provider's jsii assembly requires its lib/index.js, which re-exports every
// resource's submodule (2,135 for AWS); this defines each re-export as a getter that requires it on first use.
// Which npm packages: the JSON list in RAY_EKS_LAZY_PACKAGES (this file is used as-is, never templated).
// An index.js that is lazy already (getters that require) is left alone; NODE_DEBUG=fast_imports says so.
const fs = require("fs");
const Module = require("module");
const path = require("path");
const util = require("util");

const ENV_PACKAGES = "RAY_EKS_LAZY_PACKAGES";
const debug = util.debuglog("fast_imports");

function warn(what, why) {
  // jsii's console protocol: the Python side prints it to its stderr.
  const line = `warning: fast imports off for node ${what} (${why}); loading it the plain, slower way\n`;
  process.stderr.write(JSON.stringify({ stderr: Buffer.from(line).toString("base64") }) + "\n");
}

function packagesFromEnv() {
  const raw = process.env[ENV_PACKAGES];
  if (!raw) return new Set();
  try {
    const names = JSON.parse(raw);
    if (Array.isArray(names) && names.every((n) => typeof n === "string")) return new Set(names);
  } catch (e) {
    // reported below
  }
  warn("providers", `${ENV_PACKAGES} is not a JSON list of package names`);
  return new Set();
}
const PACKAGES = packagesFromEnv();

function providerPackage(filename) {
  // <package root>/lib/index.js, wherever jsii unpacked it (its package cache, through a symlink).
  if (path.basename(filename) !== "index.js" || path.basename(path.dirname(filename)) !== "lib") return null;
  try {
    const name = JSON.parse(fs.readFileSync(path.join(path.dirname(filename), "..", "package.json"), "utf8")).name;
    return PACKAGES.has(name) ? name : null;
  } catch (e) {
    return null;
  }
}

const REEXPORT = /^exports\.([A-Za-z_$][\w$]*) = require\("(\.\/[\w.-]+)"\);$/;
const HOIST = /^(exports\.[A-Za-z_$][\w$]* = )+void 0;$/;
const KNOWN = new Set(['"use strict";', 'Object.defineProperty(exports, "__esModule", { value: true });']);
// Already lazy: no eager re-export, and getters that require on first use (what aws-cdk's lazify tool emits, and
// hand-written lazy indexes do). jsii itself emits index.js as tsc does, eager; its kernel only honours a lazy
// entry point named in package.json "exports" (that one is not lib/index.js, so it never reaches us).
const EAGER = /^\s*(exports\.[A-Za-z_$][\w$]*\s*=\s*require\(|__exportStar\(require\()/m;
const LAZY_GETTER = /Object\.defineProperty\(\s*exports\s*,[^;]*?\bget\b[^;]*?\brequire\(/;

function alreadyLazy(content) {
  return !EAGER.test(content) && LAZY_GETTER.test(content);
}

function plan(content) {
  const exportsTo = [];
  let inComment = false;
  for (const raw of content.split(/\r?\n/)) {
    const line = raw.trim();
    const close = line.indexOf("*/");
    if (close >= 0 && close !== line.length - 2) return { why: "code after a comment" };
    if (inComment) {
      inComment = close < 0;
      continue;
    }
    if (line === "" || line.startsWith("//") || KNOWN.has(line) || HOIST.test(line)) continue;
    if (line.startsWith("/*")) {
      inComment = close < 0;
      continue;
    }
    const m = REEXPORT.exec(line);
    if (!m) return { why: `unexpected line ${JSON.stringify(line.slice(0, 80))}` };
    exportsTo.push([m[1], m[2]]);
  }
  return exportsTo.length ? { exportsTo } : { why: "no re-exports" };
}

function defineLazyExports(mod, exportsTo) {
  Object.defineProperty(mod.exports, "__esModule", { value: true });
  for (const [name, rel] of exportsTo) {
    Object.defineProperty(mod.exports, name, {
      enumerable: true,
      configurable: true,
      get() {
        const value = mod.require(rel);
        Object.defineProperty(mod.exports, name, { value, enumerable: true, writable: true, configurable: true });
        return value;
      },
    });
  }
}

const compile = Module.prototype._compile;
Module.prototype._compile = function (content, filename) {
  const pkg = providerPackage(filename);
  if (!pkg) return compile.call(this, content, filename);
  if (alreadyLazy(content)) {
    debug("%s loads its submodules lazily already; left alone", pkg);
    return compile.call(this, content, filename);
  }
  const p = plan(content);
  if (!p.exportsTo) {
    warn(pkg, p.why);
    return compile.call(this, content, filename);
  }
  defineLazyExports(this, p.exportsTo);
};

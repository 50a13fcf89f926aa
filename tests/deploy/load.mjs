// Shared by the manifest checks: reads the YAML files named on the command line (multi-document,
// e.g. `kubectl kustomize` output) into a list of {file, object}. The npm packages come from
// CONTACTS_NODE_MODULES (scripts/deps.sh --test installs them there).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const nodeModules = process.env.CONTACTS_NODE_MODULES;
if (!nodeModules) throw new Error("CONTACTS_NODE_MODULES is not set (see tests/deploy/check.sh)");

export function importPackageFile(relative) {
  return import(pathToFileURL(join(nodeModules, relative)).href);
}

export async function loadObjects(files) {
  const { parseAllDocuments } = await importPackageFile("yaml/dist/index.js");
  const objects = [];
  for (const file of files) {
    for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
      const object = doc.toJS();
      if (object) objects.push({ file, object });
    }
  }
  return objects;
}

// Validates every object of the given manifests against the Kubernetes OpenAPI schemas, as the
// npm packages kubernetes-models and @kubernetes-models/prometheus-operator carry them (chosen by
// apiVersion and kind). Exits 1 with one
// line per invalid object or unknown kind.
import { importPackageFile, loadObjects } from "./load.mjs";

const objects = await loadObjects(process.argv.slice(2));
let problems = 0;
for (const { file, object } of objects) {
  const { apiVersion = "", kind = "" } = object;
  const where = `${file}: ${kind} ${object.metadata?.name ?? "(no name)"}`;
  // "apps/v1" -> apps/v1/Deployment.js; "v1" -> v1/Service.js; the Prometheus Operator's kinds
  // (deploy/monitoring) from @kubernetes-models/prometheus-operator.
  const operator = apiVersion.startsWith("monitoring.coreos.com/");
  let model;
  try {
    model = (await importPackageFile(
      `${operator ? "@kubernetes-models/prometheus-operator" : "kubernetes-models"}/${apiVersion}/${kind}.js`))[kind];
  } catch {
    console.log(`${where}: no schema for apiVersion ${apiVersion} kind ${kind}`);
    problems++;
    continue;
  }
  // kustomize wraps a Secret's base64 values at 70 columns; the API server's decoder skips the
  // line breaks, the schema's "byte" format does not.
  if (kind === "Secret" && object.data) {
    for (const key of Object.keys(object.data)) object.data[key] = object.data[key].replace(/\s+/g, "");
  }
  try {
    new model(object).validate();
  } catch (error) {
    console.log(`${where}: ${error.message}`);
    problems++;
  }
}
console.log(`schemas: ${objects.length} objects, ${problems} invalid`);
process.exit(problems || objects.length === 0 ? 1 : 0);

// Turns the rendered dev overlay into what Debian 12's podman 4.3 `kube play` runs, for
// scripts/image-test.sh. Changed, and only this:
//  - host networking with free loopback ports (the workplace's network is loopback only): the
//    gateway's CONTACTS_GATEWAY_*LISTEN ports, kore-sim's --listen, Redis's port, and the URLs
//    http://kore-sim:8080 as http://127.0.0.1:SIM and redis://redis:6379 as
//    redis://127.0.0.1:REDIS (no cluster DNS); containers' `ports` lists are left out (podman 4.3
//    turns them into port mappings, which host networking refuses);
//  - Secrets become files for `podman secret create` (podman 4.3 mounts a Secret's data without
//    decoding it from base64, so the files hold it decoded), not objects to play; and, for
//    environment variables (secretKeyRef), a second secret <name>-env of each: podman 4.3 reads
//    those only from a flat JSON object of base64 values (from a Secret it fails, "not valid
//    JSON", and drops an optional variable without a word);
//  - objects podman does not run (Service, NetworkPolicy, PodDisruptionBudget, ...) are left out.
// Everything else (env names, ConfigMaps, mounts, securityContext, image) is played as rendered.
//   node podman_play.mjs RENDERED OUT_DIR SIM LISTEN PROBE ADMIN REDIS
//   -> OUT_DIR/play.yaml, OUT_DIR/secret-<name>.yaml and secret-<name>-env.yaml per Secret,
//      OUT_DIR/secrets (their names)
import { writeFileSync } from "node:fs";
import { importPackageFile, loadObjects } from "./load.mjs";

const { stringify } = await importPackageFile("yaml/dist/index.js");
const [rendered, out, sim, listen, probe, admin, redis] = process.argv.slice(2);
const objects = (await loadObjects([rendered])).map((o) => o.object);
const port = (address, to) => address.replace(/:\d+$/, `:${to}`);

const play = [], secrets = [];
for (const object of objects) {
  if (object.kind === "Secret") {
    const data = Object.fromEntries(Object.entries(object.data ?? {})
      .map(([k, v]) => [k, Buffer.from(v.replace(/\s+/g, ""), "base64").toString("utf8")]));
    Object.assign(data, object.stringData ?? {});
    writeFileSync(`${out}/secret-${object.metadata.name}.yaml`,
                  stringify({ apiVersion: "v1", kind: "Secret", metadata: { name: object.metadata.name }, data }));
    secrets.push(object.metadata.name);
    const env = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString("base64")]));
    writeFileSync(`${out}/secret-${object.metadata.name}-env.yaml`, JSON.stringify(env));
    secrets.push(`${object.metadata.name}-env`);
  } else if (object.kind === "ConfigMap") {
    const data = object.data ?? {};
    if (data.CONTACTS_GATEWAY_LISTEN) {
      data.CONTACTS_GATEWAY_LISTEN = port(data.CONTACTS_GATEWAY_LISTEN, listen);
      data.CONTACTS_GATEWAY_PROBE_LISTEN = port(data.CONTACTS_GATEWAY_PROBE_LISTEN, probe);
      data.CONTACTS_GATEWAY_ADMIN_LISTEN = port(data.CONTACTS_GATEWAY_ADMIN_LISTEN, admin);
      data.CONTACTS_GATEWAY_UPSTREAM = data.CONTACTS_GATEWAY_UPSTREAM.replace("//kore-sim:8080", `//127.0.0.1:${sim}`);
      if (data.CONTACTS_GATEWAY_SHARED_STATE) {
        data.CONTACTS_GATEWAY_SHARED_STATE =
          data.CONTACTS_GATEWAY_SHARED_STATE.replace("//redis:6379", `//127.0.0.1:${redis}`);
      }
    }
    play.push(object);
  } else if (object.kind === "Deployment") {
    for (const c of object.spec.template.spec.containers) {
      c.command = c.command?.map((arg) => (arg === "0.0.0.0:8080" ? `127.0.0.1:${sim}` : arg));
      if (c.name === "redis") c.args = [...c.args, "--bind", "127.0.0.1", "--port", redis];
      for (const e of c.env ?? []) {
        if (e.valueFrom?.secretKeyRef) e.valueFrom.secretKeyRef.name += "-env";
      }
      delete c.ports;
    }
    play.push(object);
  }
}
writeFileSync(`${out}/play.yaml`, play.map((o) => stringify(o)).join("---\n"));
writeFileSync(`${out}/secrets`, secrets.join("\n") + "\n");
console.log(`podman_play: ${play.length} objects to play, ${secrets.length} secret(s)`);

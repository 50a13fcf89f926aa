// Our own manifest rules: the checks kube-score, kube-linter and Polaris apply by default that
// matter here, plus the gateway's own (gRPC probes, drain timing, load balancing). Prints one line
// per violation ("RULE kind/name: message") and exits 1 if there is any.
//   node check_rules.mjs FILE...    check the objects of these manifests, all together
//   node check_rules.mjs --list     the rule ids
import { loadObjects } from "./load.mjs";

const WORKLOAD_KINDS = new Set(["Deployment", "StatefulSet", "DaemonSet"]);
const DEFAULT_DRAIN_SECONDS = 20;  // contacts-gateway --drain-timeout

const matches = (selector, labels) =>
  !!selector && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
const podLabels = (w) => w.spec?.template?.metadata?.labels ?? {};
const podSpec = (w) => w.spec?.template?.spec ?? {};
const containers = (w) => podSpec(w).containers ?? [];
const grpcPort = (c) => (c.ports ?? []).find((p) => p.name === "grpc");

function seconds(text) {  // "20s", "1m", "1m30s", "250ms" or a bare number of seconds
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  let total = 0;
  for (const [, n, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(n) * { ms: 0.001, s: 1, m: 60, h: 3600 }[unit];
  }
  return total;
}

// A setting of the gateway in a container: its env, else the ConfigMaps it takes env from.
function envValue(container, all, name) {
  const direct = (container.env ?? []).find((e) => e.name === name);
  if (direct?.value) return direct.value;
  for (const from of container.envFrom ?? []) {
    const map = all.find((o) => o.kind === "ConfigMap" && o.metadata?.name === from.configMapRef?.name);
    if (map?.data?.[name]) return map.data[name];
  }
  return undefined;
}

function drainSeconds(container, all) {
  const value = envValue(container, all, "CONTACTS_GATEWAY_DRAIN_TIMEOUT");
  return value ? seconds(value) : DEFAULT_DRAIN_SECONDS;
}

const portOf = (address) => Number(/:(\d+)$/.exec(address ?? "")?.[1]);
const secretVolumes = (w) => (podSpec(w).volumes ?? []).filter((v) => v.secret);
// A mode Kubernetes may give a Secret's files: read for the owner (and its group), nothing else.
const readOnlyMode = (mode) => mode !== undefined && (mode & ~0o440) === 0 && (mode & 0o400) !== 0;

function preStopSeconds(container) {
  const hook = container.lifecycle?.preStop;
  if (hook?.sleep) return hook.sleep.seconds;
  const command = hook?.exec?.command ?? [];
  return command[0] === "sleep" ? Number(command[1]) : 0;
}

// Each rule: id, what it applies to, and check(object, all) returning messages for violations.
const RULES = [
  ["run-as-non-root", "workload", (w) =>
    containers(w).filter((c) => !(c.securityContext?.runAsNonRoot ?? podSpec(w).securityContext?.runAsNonRoot))
      .map((c) => `container ${c.name} may run as root: set runAsNonRoot: true`)],
  ["run-as-high-ids", "workload", (w) => containers(w).flatMap((c) => ["runAsUser", "runAsGroup"]
    .filter((f) => !((c.securityContext?.[f] ?? podSpec(w).securityContext?.[f]) > 10000))
    .map((f) => `container ${c.name}: ${f} must be above 10000 (no clash with host users and groups)`))],
  ["read-only-root-filesystem", "workload", (w) =>
    containers(w).filter((c) => c.securityContext?.readOnlyRootFilesystem !== true)
      .map((c) => `container ${c.name}: set readOnlyRootFilesystem: true`)],
  ["no-privilege-escalation", "workload", (w) =>
    containers(w).filter((c) => c.securityContext?.allowPrivilegeEscalation !== false)
      .map((c) => `container ${c.name}: set allowPrivilegeEscalation: false`)],
  ["not-privileged", "workload", (w) =>
    containers(w).filter((c) => c.securityContext?.privileged === true)
      .map((c) => `container ${c.name} is privileged`)],
  ["drop-all-capabilities", "workload", (w) =>
    containers(w).filter((c) => !(c.securityContext?.capabilities?.drop ?? []).includes("ALL") ||
                                (c.securityContext?.capabilities?.add ?? []).length > 0)
      .map((c) => `container ${c.name}: drop ALL capabilities and add none`)],
  ["seccomp-runtime-default", "workload", (w) =>
    containers(w).filter((c) => !["RuntimeDefault", "Localhost"].includes(
        (c.securityContext?.seccompProfile ?? podSpec(w).securityContext?.seccompProfile)?.type))
      .map((c) => `container ${c.name}: seccompProfile type must be RuntimeDefault`)],
  ["no-host-namespaces", "workload", (w) =>
    ["hostNetwork", "hostPID", "hostIPC"].filter((f) => podSpec(w)[f] === true)
      .map((f) => `${f} is on`)],
  ["no-host-port", "workload", (w) => containers(w).flatMap((c) => (c.ports ?? []).filter((p) => p.hostPort)
    .map((p) => `container ${c.name} binds host port ${p.hostPort}`))],
  ["selector-matches-pods", "workload", (w) =>
    matches(w.spec?.selector?.matchLabels, podLabels(w)) ? [] : ["spec.selector does not match the pod template's labels"]],
  ["no-secret-in-env", "workload", (w) => containers(w).flatMap((c) => (c.env ?? [])
    .filter((e) => /secret|password|token|key/i.test(e.name) && e.value !== undefined)
    .map((e) => `container ${c.name}: env ${e.name} has a literal value (use a Secret, mounted as a file)`))],
  ["no-host-path", "workload", (w) =>
    (podSpec(w).volumes ?? []).filter((v) => v.hostPath).map((v) => `volume ${v.name} mounts a host path`)],
  ["resources", "workload", (w) => containers(w).flatMap((c) =>
    ["requests.cpu", "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
     "limits.ephemeral-storage"]
      .filter((k) => { const [a, b] = k.split("."); return c.resources?.[a]?.[b] === undefined; })
      .map((k) => `container ${c.name} has no resources.${k}`))],
  ["image-tag", "workload", (w) =>
    containers(w).filter((c) => { const tag = /:([^/:@]+)$/.exec(c.image ?? "")?.[1];
                                  return !tag && !c.image?.includes("@") || tag === "latest"; })
      .map((c) => `container ${c.name}: image ${c.image} needs a fixed tag (not latest)`)],
  ["probes", "workload", (w) => containers(w).flatMap((c) => {
    if (!c.livenessProbe || !c.readinessProbe) return [`container ${c.name} needs liveness and readiness probes`];
    const same = JSON.stringify(c.livenessProbe) === JSON.stringify(c.readinessProbe);
    return same ? [`container ${c.name}: liveness and readiness probes are identical`] : [];
  })],
  ["no-service-account-token", "workload", (w, all) => {
    const name = podSpec(w).serviceAccountName ?? "default";
    const account = all.find((o) => o.kind === "ServiceAccount" && o.metadata?.name === name);
    const automount = podSpec(w).automountServiceAccountToken ?? account?.automountServiceAccountToken;
    const problems = automount === false ? [] : ["set automountServiceAccountToken: false"];
    if (podSpec(w).serviceAccountName && !account) problems.push(`ServiceAccount ${name} is not in the manifests`);
    return problems;
  }],
  ["network-policy", "workload", (w, all) => {
    const policies = all.filter((o) => o.kind === "NetworkPolicy" &&
                                       matches(o.spec?.podSelector?.matchLabels ?? {}, podLabels(w)));
    const types = new Set(policies.flatMap((p) => p.spec?.policyTypes ?? []));
    const problems = ["Ingress", "Egress"].filter((t) => !types.has(t))
      .map((t) => `no NetworkPolicy restricts ${t} of its pods`);
    const ports = new Set(containers(w).flatMap((c) => (c.ports ?? []).flatMap((p) => [p.name, p.containerPort])));
    for (const policy of policies) {
      for (const rule of policy.spec?.ingress ?? []) {
        if (!rule.ports?.length) problems.push(`NetworkPolicy ${policy.metadata.name} lets in every port`);
        for (const p of rule.ports ?? []) {
          if (!ports.has(p.port)) problems.push(`NetworkPolicy ${policy.metadata.name} lets in port ${p.port}, not one the pods serve`);
        }
      }
    }
    return problems;
  }],
  ["hpa-owns-replicas", "workload", (w, all) =>
    hpaFor(w, all) && w.spec?.replicas !== undefined
      ? ["spec.replicas is set while a HorizontalPodAutoscaler scales it (each apply would reset the count)"] : []],
  ["pod-disruption-budget", "replicated", (w, all) => {
    const pdb = all.find((o) => o.kind === "PodDisruptionBudget" && matches(o.spec?.selector?.matchLabels, podLabels(w)));
    if (!pdb) return ["no PodDisruptionBudget covers its pods"];
    const min = hpaFor(w, all)?.spec?.minReplicas ?? w.spec?.replicas ?? 1;
    const blocks = pdb.spec.maxUnavailable === 0 || pdb.spec.maxUnavailable === "0%" ||
                   (typeof pdb.spec.minAvailable === "number" && pdb.spec.minAvailable >= min);
    return blocks ? [`PodDisruptionBudget ${pdb.metadata.name} never lets a pod be evicted (node drains block)`] : [];
  }],
  ["spread-across-nodes", "replicated", (w) => {
    const spec = podSpec(w);
    const spread = (spec.topologySpreadConstraints ?? []).some((t) => t.topologyKey === "kubernetes.io/hostname");
    const anti = [...(spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? [])
                    .map((t) => t.podAffinityTerm),
                  ...(spec.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? [])]
      .some((t) => t?.topologyKey === "kubernetes.io/hostname");
    return spread || anti ? [] : ["pods are not spread across nodes (topologySpreadConstraints or podAntiAffinity on kubernetes.io/hostname)"];
  }],
  ["grpc-health-probes", "grpc", (w, all) => containers(w).filter(grpcPort).flatMap((c) => {
    const live = c.livenessProbe?.grpc, ready = c.readinessProbe?.grpc;
    if (!live || !ready) return [`container ${c.name}: liveness and readiness must be grpc probes`];
    const problems = [];
    // Kubelet's gRPC probes speak plaintext: they go to the probe port (--probe-listen), which
    // serves health only, never to the grpc port (TLS in production).
    const probe = (c.ports ?? []).find((p) => p.name === "probe")?.containerPort;
    const listening = portOf(envValue(c, all, "CONTACTS_GATEWAY_PROBE_LISTEN"));
    if (probe === undefined || probe !== listening) {
      problems.push(`container ${c.name}: needs a port named probe that CONTACTS_GATEWAY_PROBE_LISTEN listens on (${listening || "unset"})`);
    }
    if (live.port !== probe || ready.port !== probe) problems.push(`container ${c.name}: grpc probes must use the plaintext probe port, not ${live.port}/${ready.port}`);
    if (!live.service || !ready.service || live.service === ready.service) {
      problems.push(`container ${c.name}: liveness and readiness need distinct health service names (readiness fails during a drain, liveness does not)`);
    }
    return problems;
  })],
  ["drain-fits-grace-period", "grpc", (w, all) => containers(w).filter(grpcPort).flatMap((c) => {
    const drain = drainSeconds(c, all), pause = preStopSeconds(c);
    const grace = podSpec(w).terminationGracePeriodSeconds ?? 30;
    const problems = [];
    if (pause <= 0) problems.push(`container ${c.name}: needs a preStop pause so endpoints drop the pod before SIGTERM`);
    if (grace <= pause + drain) problems.push(`terminationGracePeriodSeconds ${grace} must exceed preStop ${pause}s + drain ${drain}s`);
    const p = c.livenessProbe ?? {};
    if ((p.periodSeconds ?? 10) * (p.failureThreshold ?? 3) <= drain) {
      problems.push(`container ${c.name}: liveness must tolerate failures for longer than the ${drain}s drain`);
    }
    return problems;
  })],
  ["tls-for-callers", "grpc", (w, all) => containers(w).filter(grpcPort).flatMap((c) => {
    if (podSpec(w) && w.spec?.template?.metadata?.annotations?.["contacts-gateway/plaintext"]) return [];
    const cert = envValue(c, all, "CONTACTS_GATEWAY_TLS_CERT"), key = envValue(c, all, "CONTACTS_GATEWAY_TLS_KEY");
    if (!cert || !key) {
      return [`container ${c.name} serves gRPC in plaintext: set CONTACTS_GATEWAY_TLS_CERT/KEY (or annotate the pod contacts-gateway/plaintext with why)`];
    }
    const secrets = new Set(secretVolumes(w).map((v) => v.name));
    return [cert, key].filter((file) => !(c.volumeMounts ?? []).some((m) => secrets.has(m.name) && file.startsWith(`${m.mountPath}/`)))
      .map((file) => `container ${c.name}: ${file} is not on a mounted Secret`);
  })],
  ["secret-volumes-read-only", "workload", (w) => secretVolumes(w).flatMap((v) => {
    const problems = [];
    if (!readOnlyMode(v.secret.defaultMode)) {
      problems.push(`Secret volume ${v.name}: set defaultMode 0400 (got ${v.secret.defaultMode?.toString(8) ?? "the default 0644"})`);
    }
    for (const item of v.secret.items ?? []) {
      if (item.mode !== undefined && !readOnlyMode(item.mode)) problems.push(`Secret volume ${v.name}: item ${item.key} mode ${item.mode.toString(8)}`);
    }
    for (const c of containers(w)) {
      for (const m of (c.volumeMounts ?? []).filter((m) => m.name === v.name && m.readOnly !== true)) {
        problems.push(`container ${c.name} mounts Secret volume ${v.name} at ${m.mountPath} writable: set readOnly: true`);
      }
    }
    return problems;
  })],
  ["grpc-services", "grpc", (w, all) => {
    const services = all.filter((o) => o.kind === "Service" && matches(o.spec?.selector, podLabels(w)));
    const problems = services.flatMap((s) => (s.spec.ports ?? [])
      .filter((p) => (p.targetPort === "grpc" || p.name === "grpc") && p.appProtocol !== "grpc")
      .map((p) => `Service ${s.metadata.name} port ${p.name ?? p.port}: set appProtocol: grpc`));
    if (!services.some((s) => s.spec.clusterIP === "None")) problems.push("no headless Service for client-side load balancing");
    if (!services.some((s) => s.spec.clusterIP !== "None")) problems.push("no ClusterIP Service");
    return problems;
  }],
  ["service-targets-pods", "Service", (s, all) =>
    all.some((w) => WORKLOAD_KINDS.has(w.kind) && matches(s.spec?.selector, podLabels(w)))
      ? [] : ["its selector matches no workload's pods"]],
  ["network-policy-sources", "NetworkPolicy", (n) => (n.spec?.ingress ?? []).flatMap((rule, i) => {
    if (!rule.from?.length) return [`ingress rule ${i} lets in every source: say from which pods or namespaces`];
    // The metrics port is for the monitoring namespace only.
    const metrics = (rule.ports ?? []).some((p) => p.port === "metrics" || p.port === 9090);
    const onlyMonitoring = rule.from.every((peer) => !peer.podSelector && !peer.ipBlock &&
      peer.namespaceSelector?.matchLabels?.["kubernetes.io/metadata.name"]);
    return metrics && !onlyMonitoring ? [`ingress rule ${i} lets the metrics port in from outside the monitoring namespace`] : [];
  })],
  ["network-policy-targets-pods", "NetworkPolicy", (n, all) =>
    all.some((w) => WORKLOAD_KINDS.has(w.kind) && matches(n.spec?.podSelector?.matchLabels ?? {}, podLabels(w)))
      ? [] : ["its podSelector matches no workload's pods"]],
  ["hpa-targets-workload", "HorizontalPodAutoscaler", (h, all) =>
    all.some((w) => w.kind === h.spec?.scaleTargetRef?.kind && w.metadata?.name === h.spec?.scaleTargetRef?.name)
      ? [] : [`scaleTargetRef ${h.spec?.scaleTargetRef?.kind}/${h.spec?.scaleTargetRef?.name} is not in the manifests`]],
];

function hpaFor(w, all) {
  return all.find((o) => o.kind === "HorizontalPodAutoscaler" && o.spec?.scaleTargetRef?.kind === w.kind &&
                         o.spec?.scaleTargetRef?.name === w.metadata?.name);
}

function applies(scope, object, all) {
  if (!WORKLOAD_KINDS.has(object.kind)) return scope === object.kind;
  if (scope === "workload") return true;
  if (scope === "replicated") return !!hpaFor(object, all) || (object.spec?.replicas ?? 1) > 1;
  if (scope === "grpc") return containers(object).some(grpcPort);
  return false;
}

if (process.argv[2] === "--list") {
  for (const [id] of RULES) console.log(id);
  process.exit(0);
}
const all = (await loadObjects(process.argv.slice(2))).map((o) => o.object);
let violations = 0;
for (const object of all) {
  for (const [id, scope, check] of RULES) {
    if (!applies(scope, object, all)) continue;
    for (const message of check(object, all)) {
      console.log(`${id} ${object.kind}/${object.metadata?.name}: ${message}`);
      violations++;
    }
  }
}
console.log(`rules: ${all.length} objects, ${RULES.length} rules, ${violations} violations`);
process.exit(violations || all.length === 0 ? 1 : 0);

// Helpers of tests/monitoring/check.sh (npm yaml from CONTACTS_NODE_MODULES, see tests/deploy):
//   node monitoring.mjs rules PROMETHEUSRULE FULL BARE   writes its spec as a Prometheus rules file
//                                                        (FULL), and without annotations (BARE)
//   node monitoring.mjs live PROMETHEUS_URL RULES DASHBOARD
//       against a Prometheus scraping a gateway under load: every alert expression and dashboard
//       query evaluates without error, every series they select exists, every rule is healthy.
import { readFileSync, writeFileSync } from "node:fs";
import { importPackageFile } from "../deploy/load.mjs";

const { parse, stringify } = await importPackageFile("yaml/dist/index.js");

// The vector selectors of a PromQL expression that name our metrics (or `up`), labels included.
export function selectors(expr) {
  const found = [];
  const re = /\b(contacts_gateway_[a-z_]+|grpc_server_[a-z_]+|process_[a-z_]+|up)\b(\{[^}]*\})?/g;
  for (const m of expr.matchAll(re)) {
    if (/^\s*\(/.test(expr.slice(m.index + m[0].length))) continue;  // a function's name
    found.push(m[0]);
  }
  return found;
}

// Every query the dashboard makes, with Grafana's variables as this test's values.
function dashboardQueries(file) {
  const dashboard = JSON.parse(readFileSync(file, "utf8"));
  const queries = [];
  for (const panel of dashboard.panels ?? []) {
    for (const target of panel.targets ?? []) queries.push([`panel "${panel.title}"`, target.expr]);
  }
  for (const variable of dashboard.templating?.list ?? []) {
    const q = variable.query?.query ?? (typeof variable.query === "string" ? variable.query : "");
    const m = /^label_values\((.+),\s*\w+\)$/.exec(q);
    if (m) queries.push([`variable $${variable.name}`, m[1]]);
  }
  const grafana = (expr) => expr.replaceAll("$__rate_interval", "1m").replaceAll("$job", ".+");
  return queries.map(([where, expr]) => [where, grafana(expr)]);
}

async function query(url, expr) {
  const response = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: expr })}`);
  const body = await response.json();
  if (body.status !== "success") throw new Error(`${body.errorType}: ${body.error}`);
  return body.data.result;
}

async function live(url, rulesFile, dashboardFile) {
  const rules = parse(readFileSync(rulesFile, "utf8")).groups.flatMap((g) => g.rules);
  const checks = [
    ...rules.map((r) => [`alert ${r.alert ?? r.record}`, r.expr]),
    ...dashboardQueries(dashboardFile),
  ];
  let failed = 0, selectorsChecked = 0;
  for (const [where, expr] of checks) {
    try {
      await query(url, expr);
    } catch (error) {
      console.log(`FAIL ${where}: ${expr.trim()}: ${error.message}`);
      failed++;
      continue;
    }
    for (const selector of selectors(expr)) {
      selectorsChecked++;
      const result = await query(url, `count(${selector})`);
      if (!result.length) {
        console.log(`FAIL ${where}: no series ${selector}`);
        failed++;
      }
    }
  }
  // Prometheus loaded the same rules file and evaluates it: every rule healthy.
  const loaded = (await (await fetch(`${url}/api/v1/rules`)).json()).data.groups.flatMap((g) => g.rules);
  for (const rule of loaded) {
    if (rule.health !== "ok") {
      console.log(`FAIL rule ${rule.name}: health ${rule.health} ${rule.lastError ?? ""}`);
      failed++;
    }
  }
  if (loaded.length !== rules.length) {
    console.log(`FAIL Prometheus loaded ${loaded.length} rules, the file has ${rules.length}`);
    failed++;
  }
  console.log(`live: ${checks.length} expressions, ${selectorsChecked} selectors, ` +
              `${loaded.length} rules loaded: ${failed} failed`);
  return failed;
}

const [command, ...args] = process.argv.slice(2);
if (command === "rules") {
  const [source, full, bare] = args;
  const spec = parse(readFileSync(source, "utf8")).spec;
  writeFileSync(full, stringify(spec));
  for (const group of spec.groups) for (const rule of group.rules) delete rule.annotations;
  writeFileSync(bare, stringify(spec));
} else if (command === "live") {
  process.exit((await live(...args)) ? 1 : 0);
} else {
  console.error("usage: monitoring.mjs rules PROMETHEUSRULE FULL BARE | live URL RULES DASHBOARD");
  process.exit(2);
}

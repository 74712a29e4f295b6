import type { InstanceMeta, InstanceRegistration } from "../registry/types.js";

const CREATE_SERVICE_TEXT: Record<InstanceRegistration["createService"], string> = {
  A: "A (recover if the log exists, else start fresh)",
  N: "N (always start fresh)",
  Y: "Y (always recover)",
};

function versions(reg: InstanceRegistration): string {
  return reg.upgradeVersion === reg.currentVersion
    ? String(reg.currentVersion)
    : `${reg.currentVersion} → ${reg.upgradeVersion}`;
}

/** `key: value` lines describing one registration (and its runtime metadata, when known). */
export function formatRegistration(reg: InstanceRegistration, meta?: InstanceMeta): string[] {
  const rows: Array<[string, string]> = [
    ["instance", reg.instanceName],
    ["host", reg.host],
    [
      "IC port",
      reg.icPort === undefined ? "(not registered: pass -p to the coordinator)" : String(reg.icPort),
    ],
    ["receive port", String(reg.receivePort)],
    ["send port", String(reg.sendPort)],
    ["log folder", reg.logDir],
    ["version", versions(reg)],
    ["active/active", reg.activeActive ? "yes" : "no"],
  ];
  for (const r of reg.replicas) {
    const o = reg.replicaOverrides[String(r)] ?? {};
    const parts = [
      o.receivePort === undefined ? undefined : `receive port ${o.receivePort}`,
      o.sendPort === undefined ? undefined : `send port ${o.sendPort}`,
      o.icPort === undefined ? undefined : `IC port ${o.icPort}`,
      o.host === undefined ? undefined : `host ${o.host}`,
      o.logDir === undefined ? undefined : `log ${o.logDir}`,
    ].filter((p): p is string => p !== undefined);
    rows.push([`replica ${r}`, parts.length === 0 ? "(instance settings)" : parts.join(", ")]);
  }
  rows.push(
    ["log trigger size", `${reg.logTriggerSizeMB} MB`],
    ["create service", CREATE_SERVICE_TEXT[reg.createService]],
    ["pause at start", reg.pauseAtStart ? "yes" : "no"],
    ["persist logs", reg.persistLogs ? "yes" : "no"],
    ["registration id", reg.registrationId],
    ["registered", reg.createdAt],
    ["updated", reg.updatedAt],
  );
  if (meta !== undefined) {
    if (meta.icAddress !== undefined) {
      const a = meta.icAddress;
      rows.push(["IC address", `${a.host}:${a.port} (pid ${a.pid}, started ${a.startedAt})`]);
    }
    if (meta.currentVersion !== undefined) rows.push(["running version", String(meta.currentVersion)]);
    if (meta.lastCommittedCheckpoint !== undefined) {
      rows.push(["last checkpoint", String(meta.lastCommittedCheckpoint)]);
    }
    if (meta.lastLogFile !== undefined) rows.push(["last log file", String(meta.lastLogFile)]);
  }
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`);
}

/** A fixed-width table of registrations, one per line, with a header. */
export function formatRegistrationTable(regs: readonly InstanceRegistration[]): string[] {
  const header = ["NAME", "HOST", "IC PORT", "RECEIVE", "SEND", "VERSION", "A/A", "REPLICAS", "LOG"];
  const rows = regs.map((r) => [
    r.instanceName,
    r.host,
    r.icPort === undefined ? "-" : String(r.icPort),
    String(r.receivePort),
    String(r.sendPort),
    versions(r),
    r.activeActive ? "yes" : "no",
    r.replicas.length === 0 ? "-" : r.replicas.join(","),
    r.logDir,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)];
}

/** One line for AMBROSIA-style tools that expect terse output. */
/** One line about an instance, or (with `replica`) about that replica: its own ports and log folder. */
export function formatRegistrationLine(reg: InstanceRegistration, replica?: number): string {
  const o = replica === undefined ? {} : (reg.replicaOverrides[String(replica)] ?? {});
  const icPort = o.icPort ?? reg.icPort;
  const ic = icPort === undefined ? "" : `, IC port ${icPort}`;
  return (
    `instance "${reg.instanceName}": receive port ${o.receivePort ?? reg.receivePort}, ` +
    `send port ${o.sendPort ?? reg.sendPort}${ic}, log ${o.logDir ?? reg.logDir}, version ${versions(reg)}`
  );
}

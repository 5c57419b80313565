/**
 * Child processes for the bench: spawned pinned to a core (taskset, when the
 * machine has it), their CPU time read from /proc, and every one of them
 * stopped when the bench ends, fails or is interrupted.
 * Only erasable TypeScript: Node runs this file as it is.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from "node:child_process";
import { readFileSync } from "node:fs";

const cleanups: Array<() => Promise<void> | void> = [];

/** Registers something to stop at the end; run last-in first-out by {@link stopAll}. */
export function onStop(stop: () => Promise<void> | void): void {
  cleanups.push(stop);
}

/** Stops everything registered, newest first; never throws. */
export async function stopAll(): Promise<void> {
  while (cleanups.length > 0) {
    const stop = cleanups.pop()!;
    try {
      await stop();
    } catch (error) {
      console.error(`bench: cleanup failed: ${String(error)}`);
    }
  }
}

/** Whether a command is on PATH. */
export function hasCommand(name: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" }).status === 0;
}

export const TASKSET = hasCommand("taskset");

/** The cores this process may use, as Linux numbers them. */
export function usableCores(): number[] {
  const status = readFileSync("/proc/self/status", "utf8");
  const list = /Cpus_allowed_list:\s*(\S+)/.exec(status)?.[1] ?? "0";
  const cores: number[] = [];
  for (const part of list.split(",")) {
    const [a, b] = part.split("-").map(Number);
    for (let c = a!; c <= (b ?? a!); c++) cores.push(c);
  }
  return cores;
}

/** Pins a running process (all its threads) to `core`; a no-op without taskset. */
export function pin(pid: number, core: number | undefined): void {
  if (!TASKSET || core === undefined) return;
  spawnSync("taskset", ["-a", "-p", "-c", String(core), String(pid)], { stdio: "ignore" });
}

/**
 * Spawns `command` pinned to `core` (through taskset when there is one) and
 * registers it to be stopped: SIGTERM, then SIGKILL after two seconds.
 */
export function spawnPinned(command: string, args: string[], core: number | undefined, options: SpawnOptions = {}): ChildProcess {
  const pinned = TASKSET && core !== undefined;
  const child = spawn(pinned ? "taskset" : command, pinned ? ["-c", String(core), command, ...args] : args, options);
  onStop(() => stopProcess(child));
  return child;
}

export async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 2_000);
  await exited;
  clearTimeout(timer);
}

/** Clock ticks per second for /proc times (USER_HZ). */
const TICKS = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim()) || 100;

/** User + system CPU seconds used so far by a process, all its threads included. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at field 3.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/** Summed CPU seconds of several processes (nginx's master and worker). */
export function cpuSecondsOf(pids: readonly number[]): number {
  let total = 0;
  for (const pid of pids) total += cpuSeconds(pid);
  return total;
}

/** Reads lines from a child's stream until `match` returns a value, or fails after `timeoutMs`. */
export function waitForLine<T>(stream: NodeJS.ReadableStream, match: (line: string) => T | undefined, timeoutMs: number, what: string): Promise<T> {
  return new Promise((resolve, reject) => {
    let buffer = "";
    const timer = setTimeout(() => {
      stream.off("data", onData);
      reject(new Error(`${what} did not start within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    const onData = (chunk: Buffer | string) => {
      buffer += String(chunk);
      let newline: number;
      while ((newline = buffer.indexOf("\n")) !== -1) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        const value = match(line);
        if (value !== undefined) {
          clearTimeout(timer);
          stream.off("data", onData);
          resolve(value);
          return;
        }
      }
    };
    stream.on("data", onData);
  });
}

/**
 * Where the bench's processes run: the load generator, upstream and harness
 * on one core, the proxies (workerd, nginx) on another, when taskset and two
 * cores are there; unpinned otherwise.
 */
export function benchCores(): { pinned: boolean; generatorCore: number | undefined; proxyCore: number | undefined } {
  const cores = usableCores();
  const pinned = TASKSET && cores.length >= 2;
  return { pinned, generatorCore: pinned ? cores[0] : undefined, proxyCore: pinned ? cores[1] : undefined };
}

/** Starts bench/upstream.ts pinned to `core` and waits for the port it listens on. */
export async function startBenchUpstream(script: string, core: number | undefined): Promise<{ child: ChildProcess; port: number }> {
  const child = spawnPinned(process.execPath, [script], core, { stdio: ["pipe", "pipe", "inherit"] });
  const { port } = await waitForLine(child.stdout!, (l) => JSON.parse(l) as { port: number }, 15_000, "the upstream");
  child.stdout!.resume();
  return { child, port };
}

// Structural checks of the deployment files: the Dockerfile, the Kubernetes manifests in
// deploy/k8s/ and the Grafana dashboard. Nothing here can be built or applied in CI (no image
// registry, no cluster), so the checks tie each file to the code it deploys: the manifests' settings
// load through the hub's own loadConfig, the probes hit the hub's real paths and port, the grace
// period covers the drain the container is configured with, and every metric the dashboard
// queries is one a running hub exports.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { type HubConfig, SETTINGS, loadConfig, parseDuration } from '../src/hub/config.js';
import { type TestHub, startTestHub } from './helpers/hub.js';
import { metricReaches } from './helpers/hub-probes.js';
import { openSse } from './helpers/sse-client.js';

const ROOT = new URL('../', import.meta.url);
const read = (path: string): string => readFileSync(new URL(path, ROOT), 'utf8');
const T = { timeout: 30_000 };
/** Stands in for secretKeyRef values: a valid HMAC secret (32+ characters). */
const DUMMY_SECRET = 'dummy-secret-from-a-secretKeyRef-0123456789';
/**
 * After the drain window, a stream whose client does not take its last bytes is cut this much
 * later (the Stream close timeout, src/server/stream.ts `closeTimeout`, which the hub leaves at
 * its default): a grace period must cover it too.
 */
const STREAM_CLOSE_TIMEOUT_S = 5;

// ---------------------------------------------------------------------------------------------
// Dockerfile

interface Instruction {
  keyword: string;
  args: string;
  stage: number;
  line: number;
}

interface Stage {
  name: string | undefined;
  image: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into instructions (comments dropped, continuation lines joined) grouped by stage. */
function parseDockerfile(text: string): { preamble: Instruction[]; stages: Stage[] } {
  const preamble: Instruction[] = [];
  const stages: Stage[] = [];
  let pending = '';
  let startLine = 0;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] as string;
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (trimmed === '' && pending === '')) continue;
    if (pending === '') startLine = i + 1;
    if (trimmed.endsWith('\\')) {
      pending += `${trimmed.slice(0, -1)} `;
      continue;
    }
    const full = (pending + trimmed).trim();
    pending = '';
    if (full === '') continue;
    const m = /^(\S+)\s*(.*)$/.exec(full) as RegExpExecArray;
    const keyword = (m[1] as string).toUpperCase();
    const args = (m[2] as string).trim();
    if (keyword === 'FROM') {
      const from = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(from, `line ${startLine}: cannot read FROM ${args}`);
      stages.push({ image: from[1] as string, name: from[2]?.toLowerCase(), instructions: [] });
    }
    const instruction = { keyword, args, stage: stages.length - 1, line: startLine };
    if (stages.length === 0) preamble.push(instruction);
    else (stages[stages.length - 1] as Stage).instructions.push(instruction);
  }
  assert.equal(pending, '', 'the Dockerfile ends inside a continuation line');
  return { preamble, stages };
}

/** The JSON (exec) form of ENTRYPOINT/CMD; the shell form is refused (signals would go to /bin/sh, not node). */
function execForm(instruction: Instruction | undefined, what: string): string[] {
  assert.ok(instruction, `the runtime stage has no ${what}`);
  let value: unknown;
  try {
    value = JSON.parse(instruction.args);
  } catch {
    assert.fail(`line ${instruction.line}: ${what} must use the exec form ["…"] so node gets SIGTERM, got ${instruction.args}`);
  }
  assert.ok(Array.isArray(value) && value.every((v) => typeof v === 'string'), `line ${instruction.line}: ${what} is not a list of strings`);
  return value as string[];
}

/** Splits `A=1 B="two words"` (ENV) into pairs. */
function envPairs(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  const re = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g;
  assert.match(args, /=/, `ENV ${args}: use the KEY=VALUE form`);
  for (const m of args.matchAll(re)) {
    const value = m[2] as string;
    out[m[1] as string] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
  }
  return out;
}

/** A matcher for .dockerignore: whether a context path is left out of the build. */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!');
      const pattern = posix.normalize((negate ? l.slice(1) : l).replace(/^\/+/, '')).replace(/\/+$/, '');
      // Go filepath.Match plus `**`, as Docker does: `*` stays within a path segment.
      const source = pattern
        .split('**')
        .map((part) => part.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]'))
        .join('.*');
      return { negate, re: new RegExp(`^${source}(?:/.*)?$`) };
    });
  return (path) => {
    let excluded = false;
    const p = posix.normalize(path).replace(/^\.\//, '').replace(/\/+$/, '');
    for (const rule of rules) if (rule.re.test(p)) excluded = !rule.negate;
    return excluded;
  };
}

/** Sources of a COPY/ADD (flags dropped, destination dropped). */
function copySources(args: string): { from: string | undefined; sources: string[]; dest: string } {
  const words = args.startsWith('[') ? (JSON.parse(args) as string[]) : args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const rest = words.filter((w) => !w.startsWith('--'));
  const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  return { from, sources: rest.slice(0, -1), dest: rest[rest.length - 1] as string };
}

const dockerText = read('Dockerfile');
const docker = parseDockerfile(dockerText);
const runtime = docker.stages[docker.stages.length - 1] as Stage;
const runtimeOf = (keyword: string): Instruction[] => runtime.instructions.filter((i) => i.keyword === keyword);
const lastOf = (keyword: string): Instruction | undefined => runtimeOf(keyword).at(-1);
/** Settings the image sets with ENV in its runtime stage (a container starts with them). */
const imageEnv: Record<string, string> = Object.assign({}, ...runtimeOf('ENV').map((i) => envPairs(i.args)));
const entrypoint = execForm(lastOf('ENTRYPOINT'), 'ENTRYPOINT');
const cmd = execForm(lastOf('CMD'), 'CMD');
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> };

describe('Dockerfile', () => {
  it('has a build stage and a runtime stage, and every COPY --from names an earlier stage', () => {
    assert.ok(docker.stages.length >= 2, `expected a multi-stage build, found ${docker.stages.length} FROM`);
    docker.stages.forEach((stage, index) => {
      for (const copy of stage.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
        const { from } = copySources(copy.args);
        if (from === undefined) continue;
        const earlier = docker.stages.slice(0, index);
        const known = /^\d+$/.test(from) ? Number(from) < index : earlier.some((s) => s.name === from.toLowerCase());
        assert.ok(known, `line ${copy.line}: COPY --from=${from} names no earlier stage (${earlier.map((s) => s.name ?? '?').join(', ')})`);
      }
    });
    // The native addon built in one stage must match the Node of the other: the same base image.
    const images = docker.stages.map((s) => s.image);
    assert.equal(new Set(images).size, 1, `build and runtime stages use different images (${images.join(', ')}); better-sqlite3 is compiled for one Node ABI`);
  });

  it('copies into the build stage only files that exist and that .dockerignore lets through', () => {
    const ignored = dockerignore(existsSync(new URL('.dockerignore', ROOT)) ? read('.dockerignore') : '');
    let copied = 0;
    for (const stage of docker.stages) {
      for (const copy of stage.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
        const { from, sources } = copySources(copy.args);
        if (from !== undefined) continue;
        for (const source of sources) {
          copied++;
          assert.ok(existsSync(new URL(source, ROOT)), `line ${copy.line}: COPY ${source}: no such file in the repository`);
          assert.ok(!ignored(source), `line ${copy.line}: COPY ${source}, but .dockerignore leaves it out of the build context`);
        }
      }
    }
    assert.ok(copied > 0, 'the build copies nothing from the context');
    // And the context does not carry local builds, dependencies or data.
    for (const path of ['node_modules', 'dist', 'ssehub-data', '.git']) assert.ok(ignored(path), `.dockerignore should leave out ${path}`);
  });

  it('runs the runtime stage as a non-root user', () => {
    const user = lastOf('USER');
    assert.ok(user, 'the runtime stage has no USER: the hub would run as root');
    const name = (user.args.split(':')[0] as string).trim();
    assert.ok(name !== '' && name !== 'root' && name !== '0', `USER ${user.args} is root`);
  });

  it('starts the file package.json `bin` points to, with `serve`, in exec form', () => {
    const script = [...entrypoint, ...cmd].find((arg) => arg.endsWith('.js'));
    assert.ok(script, `ENTRYPOINT ${JSON.stringify(entrypoint)} + CMD ${JSON.stringify(cmd)} runs no .js file`);
    assert.equal(entrypoint[0], 'node', 'node should be the process that gets SIGTERM');
    const bins = Object.values(pkg.bin).map((b) => posix.normalize(b));
    assert.ok(bins.includes(posix.normalize(script)), `${script} is not package.json's bin (${bins.join(', ')})`);
    assert.deepEqual(cmd.slice(0, 1), ['serve']);
    // The runtime stage must carry what that file needs: the build output, the dependencies, and
    // package.json (the CLI reads its version from ../package.json).
    const copiedNames = runtimeOf('COPY').flatMap((c) => copySources(c.args).sources.map((s) => posix.basename(s)));
    for (const needed of [posix.normalize(script).split('/')[0] as string, 'node_modules', 'package.json']) {
      assert.ok(copiedNames.includes(needed), `the runtime stage does not copy ${needed}`);
    }
    const stop = lastOf('STOPSIGNAL');
    assert.ok(stop === undefined || stop.args === 'SIGTERM', `STOPSIGNAL ${stop?.args}: the hub drains on SIGTERM`);
  });

  it('configures a valid hub listening on all interfaces on the EXPOSEd port, with its sqlite file in a VOLUME', () => {
    const config = loadConfig({ argv: cmd.slice(1), env: { ...imageEnv, SSEHUB_JWT_KEY: DUMMY_SECRET } });
    assert.equal(config.listen.host, '0.0.0.0', 'in a container the hub must listen on 0.0.0.0 (SSEHUB_LISTEN)');
    const exposed = runtimeOf('EXPOSE').flatMap((e) => e.args.split(/\s+/)).map((p) => Number(p.split('/')[0]));
    assert.ok(exposed.includes(config.listen.port), `listens on ${config.listen.port}, EXPOSEs ${exposed.join(', ')}`);
    const sqlite = /^sqlite:(.+)$/.exec(config.transport);
    if (sqlite !== null) {
      const workdir = lastOf('WORKDIR')?.args ?? '/';
      const dir = posix.dirname(posix.resolve(workdir, sqlite[1] as string));
      const volumes = runtimeOf('VOLUME').flatMap((v) => (v.args.startsWith('[') ? (JSON.parse(v.args) as string[]) : v.args.split(/\s+/)));
      assert.ok(volumes.map((v) => posix.normalize(v)).includes(dir), `the sqlite file is in ${dir}, which is not a VOLUME (${volumes.join(', ') || 'none'})`);
    }
  });

  it('has a HEALTHCHECK that asks /healthz on the hub port with node (the slim image has no curl)', () => {
    const check = lastOf('HEALTHCHECK');
    assert.ok(check, 'the runtime stage has no HEALTHCHECK');
    const m = /(?:^|\s)CMD\s+(.*)$/.exec(check.args);
    assert.ok(m, `HEALTHCHECK ${check.args} has no CMD`);
    const command = m[1] as string;
    assert.match(command, /^(?:\[\s*"node"|node\s)/, 'the health check should run node');
    assert.match(command, /\/healthz/, 'the health check should hit /healthz (liveness), not /readyz');
    const port = loadConfig({ argv: cmd.slice(1), env: { ...imageEnv, SSEHUB_JWT_KEY: DUMMY_SECRET } }).listen.port;
    assert.ok(command.includes(`:${port}`) || command.includes('SSEHUB_LISTEN'), `the health check neither targets port ${port} nor reads SSEHUB_LISTEN`);
  });
});

// ---------------------------------------------------------------------------------------------
// Kubernetes

type Obj = Record<string, unknown>;
const obj = (value: unknown): Obj => (value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : {});
const list = (value: unknown): Obj[] => (Array.isArray(value) ? value.map(obj) : []);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const labelsMatch = (selector: Obj, labels: Obj): boolean => Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** `make()` on first use, so a file that cannot be read fails the tests that need it, each with the reason. */
function lazy<T>(make: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: make() }).v;
}

const K8S_DIR = new URL('deploy/k8s/', ROOT);
const loadManifests = lazy(() => readdirSync(K8S_DIR)
  .filter((f) => /\.ya?ml$/.test(f) && !/^kustomization\.ya?ml$/.test(f))
  .sort()
  .map((file) => {
    const docs = parseAllDocuments(readFileSync(new URL(file, K8S_DIR), 'utf8'));
    const resources = (Array.isArray(docs) ? docs : [docs]).map((doc, i) => {
      assert.equal(doc.errors.length, 0, `${file} document ${i + 1}: ${doc.errors.map((e) => e.message).join('; ')}`);
      return obj(doc.toJS());
    });
    return { file, resources: resources.filter((r) => Object.keys(r).length > 0) };
  }));

const isHubImage = (image: unknown): boolean => /(^|\/)ssehub(:|@|$)/.test(str(image) ?? '');

interface HubDeployment {
  file: string;
  deployment: Obj;
  pod: Obj;
  container: Obj;
  env: Record<string, string>;
  config: HubConfig;
}

/** The environment a container starts with: the image's ENV, then its own (secretKeyRef values replaced by a dummy). */
function containerEnv(container: Obj, where: string): Record<string, string> {
  assert.equal(container.envFrom, undefined, `${where}: envFrom is not resolved by this test; list the variables`);
  const env: Record<string, string> = { ...imageEnv };
  for (const e of list(container.env)) {
    const name = str(e.name) as string;
    if (e.value !== undefined) env[name] = String(e.value);
    else if (obj(obj(e.valueFrom).secretKeyRef).name !== undefined) env[name] = DUMMY_SECRET;
    else assert.fail(`${where}: cannot resolve ${name} (only value and secretKeyRef are understood)`);
  }
  return env;
}

/** Seconds the preStop hook waits: the `sleep` action, `sleep N`, or node's `setTimeout(…, ms)`. */
function preStopSeconds(container: Obj, where: string): number {
  const preStop = obj(obj(container.lifecycle).preStop);
  assert.ok(Object.keys(preStop).length > 0, `${where}: no preStop hook (endpoints would still send traffic while the hub stops)`);
  const sleep = obj(preStop.sleep).seconds;
  if (typeof sleep === 'number') return sleep;
  const command = (Array.isArray(obj(preStop.exec).command) ? obj(preStop.exec).command : []) as string[];
  const joined = command.join(' ');
  const shellSleep = /(?:^|\s|\/)sleep\s+(\d+(?:\.\d+)?)\b/.exec(joined);
  if (shellSleep !== null) return Number(shellSleep[1]);
  const timeout = /setTimeout\([^,]*,\s*(\d+)\s*\)/.exec(joined);
  if (command[0] === 'node' && timeout !== null) return Number(timeout[1]) / 1000;
  return assert.fail(`${where}: cannot tell how long preStop ${JSON.stringify(preStop)} waits`);
}

function containerPort(container: Obj, port: unknown, where: string): number {
  if (typeof port === 'number') return port;
  const named = list(container.ports).find((p) => p.name === port);
  assert.ok(named, `${where}: port "${String(port)}" is not a named port of the container`);
  return named.containerPort as number;
}

/** Every container of the ssehub image, with the configuration the hub would run with (or fail the test). */
const loadHubs = lazy((): HubDeployment[] => loadManifests().flatMap(({ file, resources }) =>
  resources
    .filter((r) => r.kind === 'Deployment')
    .flatMap((deployment) => {
      const pod = obj(obj(obj(deployment.spec).template).spec);
      return list(pod.containers)
        .filter((c) => isHubImage(c.image))
        .map((container) => {
          const where = `${file}: Deployment ${String(obj(deployment.metadata).name)}`;
          assert.equal(container.command, undefined, `${where}: command overrides the image's ENTRYPOINT; use args`);
          const args = (Array.isArray(container.args) ? container.args : cmd).map(String);
          assert.equal(args[0], 'serve', `${where}: the container should run "serve"`);
          const env = containerEnv(container, where);
          let config: HubConfig;
          try {
            config = loadConfig({ argv: args.slice(1), env });
          } catch (error) {
            assert.fail(`${where}: the hub would refuse its settings: ${(error as Error).message}`);
          }
          return { file, deployment, pod, container, env, config };
        });
    }),
));

describe('Kubernetes manifests (deploy/k8s/)', () => {
  it('parse, and hold a hub Deployment with the sqlite default and a Redis-backed one', () => {
    const manifests = loadManifests();
    assert.ok(manifests.length >= 2, `expected hub.yaml and hub-redis.yaml, found ${manifests.map((m) => m.file).join(', ')}`);
    for (const { file, resources } of manifests) for (const r of resources) assert.ok(typeof r.apiVersion === 'string' && typeof r.kind === 'string', `${file}: a document without apiVersion/kind`);
    const hubs = loadHubs();
    assert.ok(hubs.some((h) => h.file === 'hub.yaml'), 'hub.yaml has no Deployment running the ssehub image');
    assert.ok(hubs.some((h) => h.file === 'hub-redis.yaml'), 'hub-redis.yaml has no Deployment running the ssehub image');
  });

  it('load every hub container settings through loadConfig, listening on 0.0.0.0 on its containerPort', () => {
    const hubs = loadHubs();
    for (const { file, container, config } of hubs) {
      assert.equal(config.listen.host, '0.0.0.0', `${file}: the hub must listen on all interfaces in a pod`);
      const ports = list(container.ports).map((p) => p.containerPort);
      assert.ok(ports.includes(config.listen.port), `${file}: the hub listens on ${config.listen.port}, the container declares ${ports.join(', ')}`);
      assert.equal(config.dev, false, `${file}: --dev in a manifest`);
    }
  });

  it('probe liveness on /healthz and readiness on /readyz, on the port the hub listens on, readiness failing fast', () => {
    const hubs = loadHubs();
    for (const { file, container, config } of hubs) {
      const liveness = obj(obj(container.livenessProbe).httpGet);
      const readiness = obj(container.readinessProbe);
      const readinessGet = obj(readiness.httpGet);
      assert.equal(liveness.path, '/healthz', `${file}: liveness must be /healthz (/readyz fails while draining; a restart would cut the drain)`);
      assert.equal(readinessGet.path, '/readyz', `${file}: readiness must be /readyz`);
      assert.equal(containerPort(container, liveness.port, file), config.listen.port, `${file}: liveness probes another port`);
      assert.equal(containerPort(container, readinessGet.port, file), config.listen.port, `${file}: readiness probes another port`);
      // A hub serving TLS itself (--tls-cert) answers probes only over HTTPS.
      const scheme = (config as unknown as Record<string, unknown>).tlsCert !== undefined ? 'HTTPS' : 'HTTP';
      for (const probe of [liveness, readinessGet]) assert.equal(probe.scheme ?? 'HTTP', scheme, `${file}: probes must use ${scheme}`);
      // Kubernetes defaults: periodSeconds 10, failureThreshold 3 — 30 s before a draining pod leaves.
      const period = (readiness.periodSeconds as number | undefined) ?? 10;
      const failures = (readiness.failureThreshold as number | undefined) ?? 3;
      assert.ok(period <= 5 && failures <= 2, `${file}: readiness takes ${period} s × ${failures} to notice a draining pod; keep it within 10 s`);
    }
  });

  it('give terminationGracePeriodSeconds room for preStop + the drain window + the last close', () => {
    const hubs = loadHubs();
    for (const { file, pod, container, env, config } of hubs) {
      const preStop = preStopSeconds(container, file);
      assert.ok(preStop > 0, `${file}: preStop waits 0 s`);
      // The drain window the container runs with: its SSEHUB_DRAIN_TIMEOUT, else the built-in default.
      const raw = env.SSEHUB_DRAIN_TIMEOUT ?? (SETTINGS.find((s) => s.name === 'drain-timeout')?.default as string);
      const drain = parseDuration(raw) / 1000;
      assert.equal(drain, config.drainTimeout / 1000);
      const grace = (pod.terminationGracePeriodSeconds as number | undefined) ?? 30;
      const needed = preStop + drain + STREAM_CLOSE_TIMEOUT_S;
      assert.ok(grace >= needed, `${file}: terminationGracePeriodSeconds ${grace} < preStop ${preStop} + drain ${drain} + close timeout ${STREAM_CLOSE_TIMEOUT_S} = ${needed}: SIGKILL would cut the drain`);
    }
  });

  it('run the hub as non-root with a read-only root filesystem, no capabilities, and its data directory mounted', () => {
    const hubs = loadHubs();
    for (const { file, pod, container, config } of hubs) {
      const podSec = obj(pod.securityContext);
      const sec = obj(container.securityContext);
      assert.equal(sec.runAsNonRoot ?? podSec.runAsNonRoot, true, `${file}: runAsNonRoot`);
      const uid = sec.runAsUser ?? podSec.runAsUser;
      // The image's USER is a name; the kubelet can only verify runAsNonRoot with a numeric id.
      assert.ok(typeof uid === 'number' && uid > 0, `${file}: runAsUser should be a non-zero number (USER in the image is a name)`);
      assert.equal(sec.readOnlyRootFilesystem, true, `${file}: readOnlyRootFilesystem`);
      assert.equal(sec.allowPrivilegeEscalation, false, `${file}: allowPrivilegeEscalation`);
      assert.ok((obj(sec.capabilities).drop as unknown[] | undefined)?.includes('ALL'), `${file}: capabilities should drop ALL`);
      const sqlite = /^sqlite:(.+)$/.exec(config.transport);
      if (sqlite !== null) {
        const dir = posix.dirname(posix.resolve(lastOf('WORKDIR')?.args ?? '/', sqlite[1] as string));
        const mount = list(container.volumeMounts).find((m) => m.mountPath === dir);
        assert.ok(mount && mount.readOnly !== true, `${file}: the sqlite directory ${dir} is not a writable volume (the root filesystem is read-only)`);
        const volume = list(pod.volumes).find((v) => v.name === mount.name);
        assert.ok(volume?.persistentVolumeClaim !== undefined, `${file}: ${dir} should be a PersistentVolumeClaim so history survives the pod`);
      }
    }
  });

  it('keep a file-based transport to one replica replaced with Recreate', () => {
    const hubs = loadHubs();
    for (const { file, deployment, config } of hubs) {
      if (/^(redis|rediss|nats):/.test(config.transport)) continue;
      const spec = obj(deployment.spec);
      assert.equal(spec.replicas ?? 1, 1, `${file}: ${config.transport} is local to one process; replicas would each have their own history`);
      assert.equal(obj(spec.strategy).type, 'Recreate', `${file}: two pods would open the same sqlite volume during a RollingUpdate`);
    }
  });

  it('run the Redis variant with several replicas on a redis:// transport served by a Service in the same file', () => {
    const hubs = loadHubs();
    const manifests = loadManifests();
    const redisHubs = hubs.filter((h) => h.file === 'hub-redis.yaml');
    const resources = manifests.find((m) => m.file === 'hub-redis.yaml')?.resources ?? [];
    for (const { deployment, config } of redisHubs) {
      const spec = obj(deployment.spec);
      assert.ok((spec.replicas as number) > 1, `hub-redis.yaml: replicas ${String(spec.replicas)}`);
      assert.match(config.transport, /^rediss?:\/\//);
      assert.equal(obj(spec.strategy).type ?? 'RollingUpdate', 'RollingUpdate');
      const labels = obj(obj(obj(spec.template).metadata).labels);
      const pdb = resources.find((r) => r.kind === 'PodDisruptionBudget' && labelsMatch(obj(obj(obj(r.spec).selector).matchLabels), labels));
      assert.ok(pdb, 'hub-redis.yaml: no PodDisruptionBudget selects the hub pods');
      const url = new URL(config.transport);
      const host = url.hostname.split('.')[0];
      const port = Number(url.port || 6379);
      const service = resources.find((r) => r.kind === 'Service' && obj(r.metadata).name === host);
      if (service !== undefined) {
        assert.ok(list(obj(service.spec).ports).some((p) => p.port === port), `hub-redis.yaml: Service ${host} does not serve port ${port}`);
        const redis = resources.find((r) => r.kind === 'Deployment' && labelsMatch(obj(obj(service.spec).selector), obj(obj(obj(obj(r.spec).template).metadata).labels)));
        assert.ok(redis, `hub-redis.yaml: Service ${host} selects no Deployment`);
        const args = list(obj(obj(obj(redis.spec).template).spec).containers).flatMap((c) => (Array.isArray(c.args) ? c.args.map(String) : []));
        assert.ok(args.join(' ').includes('--appendonly yes'), 'hub-redis.yaml: the in-cluster Redis should persist its history (--appendonly yes)');
      } else {
        assert.ok(/\./.test(url.hostname), `hub-redis.yaml: the transport names ${url.hostname}, which is neither a Service here nor an external host`);
      }
    }
    assert.ok(redisHubs.length > 0, 'no hub Deployment in hub-redis.yaml');
  });

  it('select pods with every Deployment and Service, on ports the pods declare', () => {
    const manifests = loadManifests();
    for (const { file, resources } of manifests) {
      const deployments = resources.filter((r) => r.kind === 'Deployment');
      for (const d of deployments) {
        const spec = obj(d.spec);
        const labels = obj(obj(obj(spec.template).metadata).labels);
        assert.ok(labelsMatch(obj(obj(spec.selector).matchLabels), labels), `${file}: Deployment ${String(obj(d.metadata).name)} selector does not match its pod labels`);
      }
      for (const service of resources.filter((r) => r.kind === 'Service')) {
        const name = String(obj(service.metadata).name);
        const selector = obj(obj(service.spec).selector);
        const target = deployments.find((d) => labelsMatch(selector, obj(obj(obj(obj(d.spec).template).metadata).labels)));
        assert.ok(target, `${file}: Service ${name} selects no pod of this file (${JSON.stringify(selector)})`);
        const containers = list(obj(obj(obj(target.spec).template).spec).containers);
        for (const port of list(obj(service.spec).ports)) {
          const targetPort = port.targetPort ?? port.port;
          const found = containers.some((c) => list(c.ports).some((p) => p.name === targetPort || p.containerPort === targetPort));
          assert.ok(found, `${file}: Service ${name} targets port ${String(targetPort)}, which its pods do not declare`);
        }
        assert.notEqual(obj(service.spec).sessionAffinity, 'ClientIP', `${file}: Service ${name}: resume works on any replica, sessionAffinity only unbalances`);
      }
      for (const pvc of resources.filter((r) => r.kind === 'PersistentVolumeClaim')) {
        const name = obj(pvc.metadata).name;
        const used = deployments.some((d) => list(obj(obj(obj(d.spec).template).spec).volumes).some((v) => obj(v.persistentVolumeClaim).claimName === name));
        assert.ok(used, `${file}: PersistentVolumeClaim ${String(name)} is mounted by nothing`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Grafana

interface Panel {
  id?: number;
  type?: string;
  title?: string;
  gridPos?: { x: number; y: number; w: number; h: number };
  datasource?: { uid?: string };
  targets?: { expr?: string; legendFormat?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}

const dashboard = JSON.parse(read('deploy/grafana-dashboard.json')) as {
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: unknown }[] };
};
const allPanels: Panel[] = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queried = allPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title ?? '?', expr: t.expr ?? '', legend: t.legendFormat ?? '', ds: t.datasource?.uid ?? p.datasource?.uid })));
// As the brief, with digits allowed in every family (nodejs_eventloop_lag_p99_seconds).
const METRIC = /\b(ssehub_[a-z0-9_]+|process_[a-z0-9_]+|nodejs_[a-z0-9_]+)\b/g;

/** The exposition of a hub that has seen a subscription, a publish, a delivery, a closed stream and a rejection. */
let scrape = '';
let hub: TestHub | undefined;

/** `# TYPE` of every metric family, and the label names seen on each family's samples. */
function families(text: string): { types: Map<string, string>; labels: Map<string, Set<string>> } {
  const types = new Map<string, string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) types.set(type[1] as string, type[2] as string);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (sample === null) continue;
    let family = sample[1] as string;
    for (const suffix of ['_bucket', '_sum', '_count']) if (family.endsWith(suffix) && !types.has(family)) family = family.slice(0, -suffix.length);
    const names = [...(sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)].map((m) => m[1] as string);
    const set = labels.get(family) ?? new Set<string>();
    for (const n of names) set.add(n);
    labels.set(family, set);
  }
  return { types, labels };
}

/** The family a name in an expression belongs to: itself, or a histogram/summary for `_bucket`/`_sum`/`_count`. */
function familyOf(name: string, types: Map<string, string>): string | undefined {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && ['histogram', 'summary'].includes(types.get(base) ?? '') ? base : undefined;
}

describe('Grafana dashboard (deploy/grafana-dashboard.json)', () => {
  before(async () => {
    hub = await startTestHub(['--drain-timeout', '0']);
    const topic = 'https://example.com/deploy-test';
    const stay = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic)}`, { authorization: `Bearer ${hub.adminToken}` });
    const leave = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic)}`, { authorization: `Bearer ${hub.adminToken}` });
    assert.equal(stay.status, 200);
    assert.equal((await hub.publish({ topic, data: 'x', id: 'deploy-1' })).status, 200);
    await stay.events_(1);
    await leave.events_(1);
    leave.close();
    await metricReaches(hub, 'ssehub_connections_closed_total', '{reason="client-closed"}', 1);
    assert.equal((await hub.publish({ topic, data: 'x' }, null)).status, 401);
    const resumed = await openSse(`${hub.hubUrl}?topic=${encodeURIComponent(topic)}`, { authorization: `Bearer ${hub.adminToken}`, 'last-event-id': 'no-such-id' });
    await resumed.until((r) => r.events.length >= 1, 'the resync event');
    scrape = await (await fetch(`${hub.url}/metrics`)).text();
    stay.close();
    resumed.close();
  }, T);
  after(async () => {
    await hub?.close();
  });

  it('is a dashboard on a templated Prometheus data source with job and instance variables', () => {
    assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get('DS_PROMETHEUS')?.type, 'datasource');
    assert.equal(vars.get('DS_PROMETHEUS')?.query, 'prometheus');
    for (const name of ['job', 'instance']) assert.equal(vars.get(name)?.type, 'query', `no ${name} variable`);
    assert.ok(queried.length > 0, 'no panel queries anything');
    for (const q of queried) assert.equal(q.ds, '${DS_PROMETHEUS}', `panel "${q.panel}" does not use the templated data source`);
    for (const p of allPanels) {
      if (p.datasource !== undefined) assert.equal(p.datasource.uid, '${DS_PROMETHEUS}', `panel "${p.title}" does not use the templated data source`);
    }
    const ids = allPanels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are not unique');
    // No two panels on top of each other.
    const boxes = allPanels.filter((p) => p.gridPos !== undefined).map((p) => ({ title: p.title, ...(p.gridPos as NonNullable<Panel['gridPos']>) }));
    for (const [i, a] of boxes.entries()) {
      assert.ok(a.x >= 0 && a.x + a.w <= 24, `panel "${a.title}" is outside the 24-column grid`);
      for (const b of boxes.slice(i + 1)) {
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        assert.ok(!overlap, `panels "${a.title}" and "${b.title}" overlap`);
      }
    }
  });

  it('queries only metrics a running hub exports, each filtered by $job and $instance', () => {
    const { types } = families(scrape);
    const used = new Set<string>();
    for (const { panel, expr } of queried) {
      const names = [...expr.matchAll(METRIC)];
      assert.ok(names.length > 0, `panel "${panel}": no hub metric in ${expr}`);
      for (const m of names) {
        const name = m[1] as string;
        const family = familyOf(name, types);
        assert.ok(family, `panel "${panel}": ${name} is not exported by the hub (no "# TYPE ${name.replace(/_(bucket|sum|count)$/, '')} " in /metrics)`);
        used.add(family);
        const selector = /^\{([^}]*)\}/.exec(expr.slice((m.index as number) + name.length));
        assert.ok(selector && selector[1]?.includes('job=~"$job"') && selector[1].includes('instance=~"$instance"'), `panel "${panel}": ${name} is not filtered by job=~"$job" and instance=~"$instance"`);
      }
      if (/histogram_quantile/.test(expr)) assert.match(expr, /_bucket\{/, `panel "${panel}": histogram_quantile over something that is not a histogram's buckets`);
    }
    // The hub's own metrics all have a panel.
    const own = [...types.keys()].filter((n) => n.startsWith('ssehub_'));
    assert.ok(own.length > 0, 'the scrape has no ssehub_ metrics');
    for (const name of own) assert.ok(used.has(name), `the dashboard shows nothing of ${name}`);
  });

  it('groups and labels series only by labels the metrics carry', () => {
    const { types, labels } = families(scrape);
    const generic = new Set(['instance', 'job', 'le']);
    for (const { panel, expr, legend } of queried) {
      const families_ = [...expr.matchAll(METRIC)].map((m) => familyOf(m[1] as string, types)).filter((f): f is string => f !== undefined);
      const carried = new Set(families_.flatMap((f) => [...(labels.get(f) ?? [])]));
      const byLabels = [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) => (m[1] as string).split(',').map((s) => s.trim()).filter((s) => s !== ''));
      for (const label of byLabels) {
        if (generic.has(label)) continue;
        assert.ok(carried.has(label), `panel "${panel}": groups by "${label}", which ${families_.join(', ')} do not carry (seen: ${[...carried].join(', ') || 'none'})`);
      }
      const legendLabels = [...legend.matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)].map((m) => m[1] as string);
      const aggregated = /^\s*(sum|max|min|avg|count|histogram_quantile)\b/.test(expr);
      for (const label of legendLabels) {
        if (aggregated) assert.ok(byLabels.includes(label), `panel "${panel}": legend {{${label}}} but the query aggregates it away (${expr})`);
        else assert.ok(generic.has(label) || carried.has(label), `panel "${panel}": legend {{${label}}} is not a label of the series`);
      }
    }
  });

  it('is checked against a scrape that has labelled series (the checks above would otherwise be vacuous)', T, () => {
    const { labels } = families(scrape);
    assert.ok(labels.get('ssehub_connections_closed_total')?.has('reason'), 'no ssehub_connections_closed_total{reason} series in the scrape');
    assert.ok(labels.get('ssehub_requests_rejected_total')?.has('status'), 'no ssehub_requests_rejected_total{status} series in the scrape');
    assert.ok(labels.get('ssehub_delivery_latency_seconds')?.has('le'), 'no ssehub_delivery_latency_seconds buckets in the scrape');
  });
});

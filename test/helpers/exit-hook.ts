// Clean-up that must run however this process ends: normally, or by SIGINT/SIGTERM/SIGHUP (on
// which 'exit' handlers do not run). Used by the helpers that start proxies and benchmark peers,
// so that no nginx, HAProxy or server is left behind by an interrupted run.

/** Runs `cleanup` when the process exits or is signalled; after a signal, the signal then does what it would have done (unless someone else handles it). */
export function onProcessExit(cleanup: () => void): void {
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = () => {
      cleanup();
      process.removeListener(signal, onSignal);
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

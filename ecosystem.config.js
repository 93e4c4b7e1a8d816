// PM2 process file: `pm2 start ecosystem.config.js`. No secrets or personal paths here;
// put site settings in the environment PM2 is started from (or an env file you source).
//
// On an agent host (see docs/hosts.md) start it with WORKER_ROLE=host and the
// host's own TASK_QUEUE: `WORKER_ROLE=host TASK_QUEUE=helm-build-claudebox pm2 start
// ecosystem.config.js` runs the host worker `temporal-build-worker@helm-build-claudebox`.
const fs = require("fs");
const path = require("path");

// The repo's venv: `.venv` (ours), else `venv` (a v0.5 checkout upgraded in place).
const venvPython = [".venv", "venv"]
  .map((dir) => path.join(__dirname, dir, "bin", "python"))
  .find((candidate) => fs.existsSync(candidate)) || path.join(__dirname, ".venv", "bin", "python");

// glibc's allocator for a long-lived worker, read only as a process starts (bootstrap.py's
// ALLOCATOR_ENV says why; worker.py sets the same before it re-runs itself if a launcher did
// not). A value in the environment PM2 is started from stays.
const allocator = Object.fromEntries(Object.entries({
  MALLOC_ARENA_MAX: "2",
  MALLOC_MMAP_THRESHOLD_: "131072",
  MALLOC_TRIM_THRESHOLD_: "131072",
}).map(([name, value]) => [name, process.env[name] || value]));

const worker = {
  name: "temporal-build-worker",
  script: "worker.py",
  interpreter: venvPython,
  cwd: __dirname,
  autorestart: true,
  watch: false,
  max_restarts: 10,
  exp_backoff_restart_delay: 100,
  kill_timeout: 15000,
  env: {
    PYTHONUNBUFFERED: "1",
    MATRIX_ROOM: process.env.MATRIX_ROOM || "sysadmin",
    ...allocator,
  },
};

function hostWorker() {
  const queue = (process.env.TASK_QUEUE || "").trim();
  if (!queue || queue === (process.env.WORKFLOW_TASK_QUEUE || "helm-build")) {
    throw new Error("WORKER_ROLE=host needs the host's own TASK_QUEUE, e.g. helm-build-claudebox");
  }
  return {
    ...worker,
    name: `temporal-build-worker@${queue}`,
    env: { ...worker.env, WORKER_ROLE: "host", TASK_QUEUE: queue },
  };
}

module.exports = {
  apps: [(process.env.WORKER_ROLE || "main").trim() === "host" ? hostWorker() : worker],
};

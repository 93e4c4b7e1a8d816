// PM2 process file: `pm2 start ecosystem.config.js`. No secrets or personal paths here;
// put site settings in the environment PM2 is started from (or an env file you source).
const fs = require("fs");
const path = require("path");

// The repo's venv: `.venv` (ours), else `venv` (a v0.5 checkout upgraded in place).
const venvPython = [".venv", "venv"]
  .map((dir) => path.join(__dirname, dir, "bin", "python"))
  .find((candidate) => fs.existsSync(candidate)) || path.join(__dirname, ".venv", "bin", "python");

module.exports = {
  apps: [
    {
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
      },
    },
  ],
};

// PM2 process file: `pm2 start ecosystem.config.js`. No secrets or personal paths here;
// put site settings in the environment PM2 is started from (or an env file you source).
const path = require("path");

module.exports = {
  apps: [
    {
      name: "temporal-build-worker",
      script: "worker.py",
      interpreter: path.join(__dirname, ".venv", "bin", "python"),
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

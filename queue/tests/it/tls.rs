//! Redis over TLS (`rediss://`) with an ACL user (`user:password@`), as
//! managed Redis offers it: a private `redis-server` with a certificate from
//! a test CA made here by `openssl`, its default user disabled, and one user
//! allowed only keys under `t-*`. The queue engine connects through
//! `HANGAR_REDIS_TLS_CA_FILE`'s setting, and the mistakes an operator makes
//! (wrong password, no CA) fail with errors that name them.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::common::{eventually, fast_options, free_port};
use hangar_queue::{HangarBackend, JobStatus, NewJob, Queue, RedisSettings};
use serde_json::{Value, json};

struct TlsRedis {
    port: u16,
    dir: PathBuf,
    child: Child,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl TlsRedis {
    /// A CA, a server certificate for 127.0.0.1 signed by it, and a
    /// TLS-only redis-server whose one enabled user is `hangar`.
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("hangar-tls-{}", ulid::Ulid::new()));
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=hangar-test-ca",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            &dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
        );
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
            ])
            .args(["--tls-cert-file", "server.pem", "--tls-key-file", "server.key"])
            .args(["--tls-ca-cert-file", "ca.pem", "--tls-auth-clients", "no"])
            .args(["--save", "", "--dir", "."])
            .args(["--user", "default", "off"])
            .args(["--user", "hangar", "on", ">s3cret", "~t-*", "&*", "+@all"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "TLS redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { port, dir, child }
    }

    fn settings(&self, userinfo: &str, trust_ca: bool) -> RedisSettings {
        let mut s = RedisSettings::new(format!("rediss://{userinfo}127.0.0.1:{}", self.port));
        if trust_ca {
            s.tls_ca_pem = Some(std::fs::read(self.dir.join("ca.pem")).unwrap());
        }
        s.connect_retry_for = Duration::ZERO;
        s
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn echo(args: Value) -> Result<Value, apalis_core::error::BoxDynError> {
    Ok(args)
}

#[tokio::test]
async fn over_tls_as_an_acl_user_jobs_are_enqueued_and_run() {
    let redis = TlsRedis::start();
    let settings = redis.settings("hangar:s3cret@", true);
    let prefix = format!("t-{}", ulid::Ulid::new().to_string().to_lowercase());
    let queue = Queue::connect(&settings, &prefix, "sync")
        .await
        .expect("TLS + ACL connect");
    let job = NewJob::new("k", json!({"n": 7}));
    let id = job.id.to_string();
    queue.enqueue(job).await.unwrap();
    let w = spawn_worker!(
        HangarBackend::<Value>::new(queue.clone(), fast_options()).unwrap(),
        echo
    );
    let state = eventually(Duration::from_secs(20), "the job succeeds over TLS", || async {
        queue
            .state(&id)
            .await
            .unwrap()
            .filter(|s| s.status == JobStatus::Succeeded)
    })
    .await;
    assert_eq!(state.result, Some(json!({"n": 7})));
    w.stop().await.unwrap();

    // The ACL is enforced: this user may not touch keys outside t-*.
    let elsewhere = Queue::connect(&settings, "other", "sync").await.unwrap();
    let err = elsewhere
        .enqueue(NewJob::new("k", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("NOPERM") || err.contains("no permissions"), "{err}");
}

/// What goes wrong connecting with `settings` and sending one command.
async fn failure(settings: RedisSettings) -> String {
    let mut conn = match settings.connect().await {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    match redis::cmd("PING").query_async::<String>(&mut conn).await {
        Ok(pong) => panic!("connected and answered {pong}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn a_wrong_password_or_an_untrusted_certificate_fails_naming_the_cause() {
    let redis = TlsRedis::start();
    let err = failure(redis.settings("hangar:wrong@", true)).await;
    assert!(err.to_lowercase().contains("authentication failed"), "{err}");

    // Without the CA, the system's roots do not trust the test CA.
    let err = failure(redis.settings("hangar:s3cret@", false)).await;
    assert!(err.to_lowercase().contains("certificate"), "{err}");

    // No user: the default user is disabled on this server.
    let err = failure(redis.settings("", true)).await;
    assert!(
        err.contains("NOAUTH") || err.to_lowercase().contains("authentication"),
        "{err}"
    );
}

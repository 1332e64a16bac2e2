//! Starting the gateway safely: the sandbox processor (which approves every valid card it does
//! not know) is refused on an address other than loopback unless the config says it is meant.

use serde_json::json;
use tonegate::serve::{Gateway, ServeConfig};
use tonegate_testkit::standin::{customer_endpoints, demo_function};

async fn local(tag: &str) -> (ServeConfig, std::path::PathBuf) {
    let (customer, _) = customer_endpoints(json!({"amount": 100, "currency": "USD"}), 200)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("tonegate-start-{tag}-{}", std::process::id()));
    let config = ServeConfig::local(&dir, &demo_function(customer), "tel", "agt").unwrap();
    (config, dir)
}

#[tokio::test]
async fn the_sandbox_is_refused_off_loopback_unless_allowed() {
    let (mut config, dir) = local("refused").await;
    config.listen = "0.0.0.0:0".parse().unwrap();
    let err = match Gateway::start(config, None).await {
        Ok(_) => panic!("started with the sandbox on 0.0.0.0"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("the processor is the sandbox"), "{err}");
    assert!(err.contains("allow_sandbox"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);

    let (mut config, dir) = local("allowed").await;
    config.listen = "0.0.0.0:0".parse().unwrap();
    config.allow_sandbox = true;
    let running = Gateway::start(config, None).await.unwrap();
    running.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// Generated bearer tokens are credentials: `tonegate serve` writes them to a file only its
/// owner can read, and never to the log.
#[test]
fn generated_tokens_go_to_a_private_file_not_to_the_log() {
    use std::io::Read;
    let dir = std::env::temp_dir().join(format!("tonegate-tokens-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tonegate"))
        .arg("serve")
        .env("TONEGATE_LISTEN", "127.0.0.1:0")
        .env("TONEGATE_DATA_DIR", &dir)
        .env_remove("TONEGATE_TELEPHONY_TOKEN")
        .env_remove("TONEGATE_AGENT_TOKEN")
        .env("RUST_LOG", "trace")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let file = dir.join("generated-tokens.env");
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(t) = std::fs::read_to_string(&file) {
            if t.lines().count() == 2 {
                text = t;
                break;
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(text.contains("TONEGATE_AGENT_TOKEN=agent-"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "readable by others: {mode:o}");
    }
    assert!(log.contains("generated-tokens.env"), "{log}");
    for line in text.lines() {
        let token = line.split_once('=').unwrap().1;
        assert!(!log.contains(token), "a token is in the log");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Processor secrets can live outside the config file: `env:NAME` and `file:PATH` are
/// resolved when the gateway starts, and one that cannot be resolved stops the start with an
/// error naming the setting and the variable or file, never a secret.
#[tokio::test]
async fn processor_secrets_come_from_the_environment_or_a_file() {
    use secrecy::{ExposeSecret, SecretString};
    use tonegate::serve::{resolve_secret_reference, SecretError};

    let file = std::env::temp_dir().join(format!("tonegate-secret-{}", std::process::id()));
    std::fs::write(&file, "sk_test_from_file\n").unwrap();
    let mut value = SecretString::from(format!("file:{}", file.display()));
    resolve_secret_reference("secret_key", &mut value).unwrap();
    assert_eq!(value.expose_secret(), "sk_test_from_file");

    std::env::set_var("TONEGATE_TEST_SECRET_SET", "sk_test_from_env");
    let mut value = SecretString::from("env:TONEGATE_TEST_SECRET_SET");
    resolve_secret_reference("auth.token", &mut value).unwrap();
    assert_eq!(value.expose_secret(), "sk_test_from_env");

    let mut literal = SecretString::from("sk_test_literal");
    resolve_secret_reference("secret_key", &mut literal).unwrap();
    assert_eq!(literal.expose_secret(), "sk_test_literal");

    let mut missing = SecretString::from("env:TONEGATE_TEST_SECRET_UNSET");
    assert_eq!(
        resolve_secret_reference("auth.secret", &mut missing),
        Err(SecretError::MissingVariable {
            setting: "auth.secret".into(),
            name: "TONEGATE_TEST_SECRET_UNSET".into()
        })
    );
    std::fs::write(&file, "\n").unwrap();
    let mut empty = SecretString::from(format!("file:{}", file.display()));
    assert!(matches!(
        resolve_secret_reference("secret_key", &mut empty),
        Err(SecretError::UnreadableFile { .. })
    ));
    let _ = std::fs::remove_file(&file);

    // Through the gateway: a Stripe key from an unset variable stops the start.
    let (mut config, dir) = local("secrets").await;
    config.processor = serde_json::from_value(json!({
        "type": "stripe", "secret_key": "env:TONEGATE_TEST_SECRET_UNSET"
    }))
    .unwrap();
    let err = match Gateway::start(config, None).await {
        Ok(_) => panic!("started without its Stripe key"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("secret_key") && err.contains("TONEGATE_TEST_SECRET_UNSET"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

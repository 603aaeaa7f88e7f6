//! Tests of configuration loading and validation.

use super::*;

#[test]
fn defaults_are_valid_and_hold_no_secret() {
    let c = Config::default();
    c.validate().unwrap();
    assert!(c.auth.admin_password.is_none());
    assert!(c.appmeta.encryption_key.is_none());
    assert!(c.require_appmeta_key().is_err());
}

#[test]
fn secrets_do_not_debug_print() {
    let s = Secret::new("hunter2hunter2");
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn file_and_env_layer_over_defaults() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", "[nats]\nprefix = \"fromfile\"\nrequest_timeout_ms = 42\n")?;
        jail.set_env("SREWORKS_NATS__PREFIX", "fromenv");
        jail.set_env("SREWORKS_ADMIN_PASSWORD", "a-long-enough-password");
        let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(c.nats.prefix, "fromenv");
        assert_eq!(c.nats.request_timeout_ms, 42);
        assert_eq!(c.auth.admin_password.unwrap().expose(), "a-long-enough-password");
        Ok(())
    });
}

#[test]
fn bad_values_name_the_key() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("SREWORKS_NATS__PREFIX", "Bad Prefix");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("nats.prefix"), "{e}");
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env("SREWORKS_APPMETA__ENCRYPTION_KEY", "c2hvcnQ=");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("appmeta.encryption_key"), "{e}");
        Ok(())
    });
}

#[test]
fn s3_env_layers_over_defaults() {
    let d = S3Config::default();
    assert_eq!((d.endpoint.as_deref(), d.region.as_str()), (None, "us-east-1"));
    assert_eq!((d.bucket.as_str(), d.force_path_style, d.timeout_ms), ("sreworks-packages", true, 30_000));
    figment::Jail::expect_with(|jail| {
        jail.set_env("SREWORKS_S3__ENDPOINT", "http://127.0.0.1:19000");
        jail.set_env("SREWORKS_S3__REGION", "eu-west-1");
        jail.set_env("SREWORKS_S3__ACCESS_KEY_ID", "AKIDLOCAL");
        jail.set_env("SREWORKS_S3__SECRET_ACCESS_KEY", "s3cr3t-value");
        jail.set_env("SREWORKS_S3__BUCKET", "my.bucket-1");
        jail.set_env("SREWORKS_S3__FORCE_PATH_STYLE", "false");
        jail.set_env("SREWORKS_S3__TIMEOUT_MS", "1500");
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.s3.endpoint.as_deref(), Some("http://127.0.0.1:19000"));
        assert_eq!(c.s3.region, "eu-west-1");
        assert_eq!(c.s3.access_key_id.as_ref().map(Secret::expose), Some("AKIDLOCAL"));
        assert_eq!(c.s3.secret_access_key.as_ref().map(Secret::expose), Some("s3cr3t-value"));
        assert_eq!(c.s3.bucket, "my.bucket-1");
        assert!(!c.s3.force_path_style);
        assert_eq!(c.s3.timeout(), Duration::from_millis(1500));
        assert!(!format!("{:?}", c.s3).contains("s3cr3t"));
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env("SREWORKS_S3__NO_SUCH_KEY", "x");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("no_such_key"), "{e}");
        Ok(())
    });
}

#[test]
fn s3_validation_names_the_key() {
    let check = |f: &dyn Fn(&mut S3Config)| {
        let mut c = Config::default();
        f(&mut c.s3);
        c.validate().err().map(|e| e.to_string())
    };
    let fails_on = |f: &dyn Fn(&mut S3Config), key: &str| {
        let e = check(f).unwrap_or_else(|| panic!("expected an error naming {key}"));
        assert!(e.contains(key), "{e}");
    };
    for bad in ["ab", &"a".repeat(64), "Upper", "-start", "end-", ".dot", "dot.", "under_score", "sp ace", ""]
    {
        let bad = bad.to_owned();
        fails_on(&|s| s.bucket = bad.clone(), "s3.bucket");
    }
    for good in ["abc", &"a".repeat(63), "sreworks-packages", "t0a1b2c3d4.e5", "1bucket9"] {
        let good = good.to_owned();
        assert_eq!(check(&|s| s.bucket = good.clone()), None, "{good}");
    }
    fails_on(&|s| s.endpoint = Some("127.0.0.1:9000".into()), "s3.endpoint");
    fails_on(&|s| s.endpoint = Some("ftp://host".into()), "s3.endpoint");
    assert_eq!(check(&|s| s.endpoint = Some("https://s3.example.com".into())), None);
    fails_on(&|s| s.access_key_id = Some(Secret::new("id")), "s3.secret_access_key");
    fails_on(&|s| s.secret_access_key = Some(Secret::new("key")), "s3.access_key_id");
    let both = |s: &mut S3Config| {
        s.access_key_id = Some(Secret::new("id"));
        s.secret_access_key = Some(Secret::new("key"));
    };
    assert_eq!(check(&both), None);
    fails_on(&|s| s.timeout_ms = 0, "s3.timeout_ms");
    fails_on(&|s| s.region = String::new(), "s3.region");
}

#[test]
fn gateway_streaming_limits_are_validated() {
    let c = Config::default();
    assert_eq!((c.gateway.stream_deadline_secs, c.gateway.body_idle_timeout_secs), (900, 30));
    for (key, set) in [
        (
            "gateway.stream_deadline_secs",
            (|c: &mut Config| c.gateway.stream_deadline_secs = 0) as fn(&mut Config),
        ),
        ("gateway.body_idle_timeout_secs", |c: &mut Config| c.gateway.body_idle_timeout_secs = 0),
        ("gateway.body_idle_timeout_secs", |c: &mut Config| c.gateway.body_idle_timeout_secs = 3601),
    ] {
        let mut c = Config::default();
        set(&mut c);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

#[test]
fn executor_settings_layer_and_are_validated() {
    let d = ExecutorConfig::default();
    assert_eq!(
        (
            d.call_timeout_secs,
            d.cluster_cache_secs,
            d.health_poll_ms,
            d.health_lease_secs,
            d.result_retention_hours
        ),
        (10, 60, 2_000, 30, 168)
    );
    assert_eq!((d.call_timeout(), d.health_poll()), (Duration::from_secs(10), Duration::from_millis(2_000)));
    assert_eq!(d.result_retention(), Duration::from_secs(168 * 3600));
    figment::Jail::expect_with(|jail| {
        jail.create_file("c.toml", "[executor]\ncall_timeout_secs = 3\nhealth_poll_ms = 250\n")?;
        jail.set_env("SREWORKS_EXECUTOR__CLUSTER_CACHE_SECS", "5");
        let c = Config::load(Some(Path::new("c.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(
            (c.executor.call_timeout(), c.executor.cluster_cache()),
            (Duration::from_secs(3), Duration::from_secs(5))
        );
        assert_eq!(c.executor.health_poll(), Duration::from_millis(250));
        assert_eq!(c.executor.health_lease_secs, 30);
        Ok(())
    });
    figment::Jail::expect_with(|jail| {
        jail.set_env("SREWORKS_EXECUTOR__NO_SUCH_KEY", "1");
        let e = Config::load(None).unwrap_err().to_string();
        assert!(e.contains("no_such_key"), "{e}");
        Ok(())
    });
    for (key, set) in [
        (
            "executor.call_timeout_secs",
            (|e: &mut ExecutorConfig| e.call_timeout_secs = 0) as fn(&mut ExecutorConfig),
        ),
        ("executor.cluster_cache_secs", |e: &mut ExecutorConfig| e.cluster_cache_secs = 0),
        ("executor.health_poll_ms", |e: &mut ExecutorConfig| e.health_poll_ms = 0),
        ("executor.health_lease_secs", |e: &mut ExecutorConfig| e.health_lease_secs = 0),
        ("executor.result_retention_hours", |e: &mut ExecutorConfig| e.result_retention_hours = 0),
    ] {
        let mut c = Config::default();
        set(&mut c.executor);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains(key), "{e}");
    }
}

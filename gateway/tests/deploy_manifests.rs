//! The deployment files in `deploy/` agree with the binary and with each
//! other: the Kubernetes manifests, the compose file, the Dockerfile, the
//! offline image build and the systemd template. Offline: the files are
//! only read and parsed, nothing is built or started.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml_ng::Value as Yaml;
use switchboard::config::{Config, LoadedConfig, load_str};

/// A token the loader accepts (random-looking, 32+ characters); the
/// Secret's placeholder is refused on purpose.
const TEST_TOKEN: &str = "Zq7mR2vL9kT4wZ8nC1pF6hJ3bD5gS0aEy";

/// The kinds a user of `kubectl apply -k deploy/k8s` relies on.
const KINDS: &[&str] = &[
    "Deployment",
    "Service",
    "ConfigMap",
    "Secret",
    "PodDisruptionBudget",
];

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(deploy_dir().join(rel))
        .unwrap_or_else(|e| panic!("cannot read deploy/{rel}: {e}"))
}

/// Every document of a (multi-document) YAML file, empty ones left out.
fn yaml_docs(rel: &str) -> Vec<Yaml> {
    let text = read(rel);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            Yaml::deserialize(doc).unwrap_or_else(|e| panic!("deploy/{rel} is not valid YAML: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_one(rel: &str) -> Yaml {
    let mut docs = yaml_docs(rel);
    assert_eq!(docs.len(), 1, "deploy/{rel} should hold one YAML document");
    docs.remove(0)
}

/// The YAML files in `deploy/k8s/`, by file name.
fn k8s_files() -> BTreeSet<String> {
    let dir = deploy_dir().join("k8s");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list deploy/k8s: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml") || n.ends_with(".yml"))
        .collect()
}

/// Every Kubernetes object in `deploy/k8s/` (the kustomization aside).
fn k8s_objects() -> Vec<(String, Yaml)> {
    let mut out = Vec::new();
    for file in k8s_files() {
        if file == "kustomization.yaml" || file == "kustomization.yml" {
            continue;
        }
        for doc in yaml_docs(&format!("k8s/{file}")) {
            out.push((file.clone(), doc));
        }
    }
    out
}

fn k8s_kind(kind: &str) -> Yaml {
    let found: Vec<Yaml> = k8s_objects()
        .into_iter()
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .map(|(_, d)| d)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "deploy/k8s should hold exactly one {kind}, it holds {}",
        found.len()
    );
    found.into_iter().next().unwrap()
}

/// The port of the address the binary binds by default.
fn default_port() -> u16 {
    let bind = Config::default().gateway.bind;
    bind.parse::<SocketAddr>()
        .unwrap_or_else(|e| panic!("the default gateway.bind `{bind}` is not an address: {e}"))
        .port()
}

fn deployment_container() -> Yaml {
    let d = k8s_kind("Deployment");
    let containers = d["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .expect("the Deployment has no spec.template.spec.containers");
    containers
        .iter()
        .find(|c| c["name"].as_str() == Some("switchboard"))
        .cloned()
        .expect("the Deployment has no container named switchboard")
}

/// The container port a probe or Service names, by number or by name.
fn resolve_port(container: &Yaml, port: &Yaml) -> Option<u64> {
    if let Some(n) = port.as_u64() {
        return Some(n);
    }
    let name = port.as_str()?;
    container["ports"]
        .as_sequence()?
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
}

fn container_port(container: &Yaml) -> u64 {
    let ports = container["ports"]
        .as_sequence()
        .expect("the switchboard container declares no ports");
    let http = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .expect("the switchboard container has no port named http");
    http["containerPort"]
        .as_u64()
        .expect("the http port has no numeric containerPort")
}

fn mapping_labels(v: &Yaml) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether every label of `selector` is on `labels`.
fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn pod_labels() -> BTreeMap<String, String> {
    mapping_labels(&k8s_kind("Deployment")["spec"]["template"]["metadata"]["labels"])
}

fn secret_data() -> BTreeMap<String, String> {
    mapping_labels(&k8s_kind("Secret")["stringData"])
}

/// The environment the Deployment gives the container, as the binary sees
/// it: literal values, Secret values (the token replaced by a real one:
/// the placeholder is refused on purpose), the pod's name for a fieldRef,
/// and `SWITCHBOARD_DATA_DIR` as the command line turns it into a key.
fn deployment_env(token: &str) -> Vec<(String, String)> {
    let secret_name = k8s_kind("Secret")["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let data = secret_data();
    let mut env = Vec::new();
    for e in deployment_container()["env"]
        .as_sequence()
        .expect("the switchboard container has no env")
    {
        let name = e["name"]
            .as_str()
            .expect("an env entry has no name")
            .to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if !e["valueFrom"]["secretKeyRef"].is_null() {
            let r = &e["valueFrom"]["secretKeyRef"];
            assert_eq!(
                r["name"].as_str(),
                Some(secret_name.as_str()),
                "env {name} reads a Secret other than deploy/k8s/secret.yaml's `{secret_name}`"
            );
            let key = r["key"].as_str().unwrap_or_default();
            let v = data.get(key).unwrap_or_else(|| {
                panic!("env {name} reads key `{key}`, which deploy/k8s/secret.yaml does not have")
            });
            if name == "SWITCHBOARD_TOKEN" {
                token.to_string()
            } else {
                v.clone()
            }
        } else if e["valueFrom"]["fieldRef"]["fieldPath"].as_str() == Some("metadata.name") {
            "switchboard-7d9f8c6b5-x2k4q".to_string()
        } else {
            panic!("env {name} has neither a value, a Secret key nor the pod's name");
        };
        env.push((name, value));
    }
    with_data_dir(env)
}

/// `SWITCHBOARD_DATA_DIR` is read by the command line, which passes it on
/// to the config as `SWITCHBOARD_GATEWAY__DATA_DIR`.
fn with_data_dir(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    if let Some((_, d)) = env
        .iter()
        .find(|(k, _)| k == "SWITCHBOARD_DATA_DIR")
        .cloned()
    {
        env.push(("SWITCHBOARD_GATEWAY__DATA_DIR".into(), d));
    }
    env
}

fn env_value<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The config loaded by the crate's own loader, or a panic naming every
/// problem.
fn load_config(text: &str, source: &str, env: &[(String, String)]) -> LoadedConfig {
    load_str(text, source, env)
        .unwrap_or_else(|e| panic!("{source} does not load as a config: {e}"))
}

fn configmap_toml() -> String {
    k8s_kind("ConfigMap")["data"]["switchboard.toml"]
        .as_str()
        .expect("the ConfigMap has no data key switchboard.toml")
        .to_string()
}

/// What a runtime-stage instruction of the Dockerfile says, one line each
/// (`\` continuations joined; `ENV A=1 B=2` split into `ENV A=1`, `ENV B=2`).
fn dockerfile_runtime() -> Vec<String> {
    let text = read("Dockerfile");
    let mut joined = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let l = line.trim();
        if cur.is_empty() && (l.is_empty() || l.starts_with('#')) {
            continue;
        }
        if let Some(head) = l.strip_suffix('\\') {
            cur.push_str(head.trim());
            cur.push(' ');
        } else {
            cur.push_str(l);
            joined.push(std::mem::take(&mut cur));
        }
    }
    let last_from = joined
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("deploy/Dockerfile has no FROM");
    let mut out = Vec::new();
    for l in &joined[last_from..] {
        if let Some(rest) = l.strip_prefix("ENV ") {
            for pair in rest.split_whitespace() {
                out.push(format!("ENV {pair}"));
            }
        } else {
            out.push(l.clone());
        }
    }
    out
}

fn build_offline() -> String {
    read("container/build-offline.sh")
}

/// The image tag build-offline.sh makes by default.
fn offline_default_tag() -> String {
    build_offline()
        .lines()
        .find_map(|l| l.trim().strip_prefix("DEFAULT_TAG=\"")?.strip_suffix('"'))
        .expect("deploy/container/build-offline.sh has no DEFAULT_TAG=\"…\" line")
        .to_string()
}

fn compose() -> Yaml {
    yaml_one("compose.yaml")
}

/// The gateway services of the compose file: those running the gateway's
/// image.
fn compose_gateways() -> Vec<(String, Yaml)> {
    let tag = offline_default_tag();
    compose()["services"]
        .as_mapping()
        .expect("deploy/compose.yaml has no services")
        .iter()
        .filter(|(_, s)| s["image"].as_str() == Some(tag.as_str()))
        .map(|(k, s)| (k.as_str().unwrap_or_default().to_string(), s.clone()))
        .collect()
}

/// A compose service's `environment`, as a map or a list of `K=V`.
fn compose_env(service: &Yaml) -> Vec<(String, String)> {
    let env = &service["environment"];
    if let Some(m) = env.as_mapping() {
        return m
            .iter()
            .filter_map(|(k, v)| {
                let v = match v {
                    Yaml::String(s) => s.clone(),
                    Yaml::Bool(b) => b.to_string(),
                    Yaml::Number(n) => n.to_string(),
                    _ => return None,
                };
                Some((k.as_str()?.to_string(), v))
            })
            .collect();
    }
    env.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|e| {
                    let (k, v) = e.as_str()?.split_once('=')?;
                    Some((k.to_string(), v.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Compose's `${NAME}`, `${NAME:?message}` and `${NAME:-default}`, from
/// `vars`.
fn interpolate(s: &str, vars: &BTreeMap<&str, &str>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("`{s}` in deploy/compose.yaml has an unclosed ${{"));
        let inner = &after[..end];
        let name = inner.split([':', '-', '?']).next().unwrap_or_default();
        let value = vars.get(name).copied().unwrap_or_else(|| {
            panic!("deploy/compose.yaml uses ${{{name}}}, which the test does not know to supply")
        });
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

fn compose_vars() -> BTreeMap<&'static str, &'static str> {
    BTreeMap::from([
        ("SWITCHBOARD_TOKEN", TEST_TOKEN),
        (
            "SWITCHBOARD_PASSPHRASE",
            "a long passphrase for the test only",
        ),
        ("POSTGRES_PASSWORD", "Xb4-pW9_qT2mZ7kR"),
    ])
}

/// Seconds of a compose duration such as `30s`, `1m`, `1m30s`.
fn compose_secs(d: &str) -> u64 {
    let mut total = 0;
    let mut n = String::new();
    for c in d.chars() {
        if c.is_ascii_digit() {
            n.push(c);
        } else {
            let v: u64 = n
                .parse()
                .unwrap_or_else(|_| panic!("`{d}` is not a duration"));
            total += match c {
                'h' => v * 3600,
                'm' => v * 60,
                's' => v,
                _ => panic!("`{d}` is not a duration compose reads"),
            };
            n.clear();
        }
    }
    assert!(n.is_empty(), "`{d}` has no unit (write 30s)");
    total
}

#[test]
fn the_manifests_hold_every_kind_and_kustomize_lists_every_file() {
    let objects = k8s_objects();
    for (file, o) in &objects {
        assert!(
            o["apiVersion"].as_str().is_some()
                && o["kind"].as_str().is_some()
                && o["metadata"]["name"].as_str().is_some(),
            "a document in deploy/k8s/{file} lacks apiVersion, kind or metadata.name"
        );
    }
    let kinds: BTreeSet<&str> = objects
        .iter()
        .filter_map(|(_, o)| o["kind"].as_str())
        .collect();
    for kind in KINDS {
        assert!(
            kinds.contains(kind),
            "deploy/k8s has no {kind}; it has {kinds:?}"
        );
    }

    let k = yaml_one("k8s/kustomization.yaml");
    assert_eq!(
        k["kind"].as_str(),
        Some("Kustomization"),
        "deploy/k8s/kustomization.yaml is not a Kustomization"
    );
    let listed: BTreeSet<String> = k["resources"]
        .as_sequence()
        .expect("deploy/k8s/kustomization.yaml lists no resources")
        .iter()
        .filter_map(|r| r.as_str().map(str::to_string))
        .collect();
    let files: BTreeSet<String> = k8s_files()
        .into_iter()
        .filter(|f| !f.starts_with("kustomization."))
        .collect();
    for f in &files {
        assert!(
            listed.contains(f),
            "deploy/k8s/{f} is not in kustomization.yaml's resources, so `kubectl apply -k` leaves it out"
        );
    }
    for r in &listed {
        assert!(
            files.contains(r),
            "kustomization.yaml lists {r}, which is not a file in deploy/k8s"
        );
    }
    if let Some(ns) = objects
        .iter()
        .find(|(_, o)| o["kind"].as_str() == Some("Namespace"))
    {
        assert_eq!(
            k["namespace"].as_str(),
            ns.1["metadata"]["name"].as_str(),
            "kustomization.yaml's namespace is not the Namespace deploy/k8s/{} makes",
            ns.0
        );
    }
}

#[test]
fn the_deployment_runs_two_hardened_replicas_probed_on_the_gateway_port() {
    let d = k8s_kind("Deployment");
    assert_eq!(
        d["spec"]["replicas"].as_u64(),
        Some(2),
        "the Deployment should run 2 replicas"
    );
    let selector = mapping_labels(&d["spec"]["selector"]["matchLabels"]);
    assert!(
        selects(&selector, &pod_labels()),
        "the Deployment's selector {selector:?} does not match its pods' labels {:?}",
        pod_labels()
    );

    let c = deployment_container();
    let port = container_port(&c);
    assert_eq!(
        port,
        u64::from(default_port()),
        "the container port is not the port of the binary's default bind ({})",
        Config::default().gateway.bind
    );
    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(
            get["path"].as_str(),
            Some(path),
            "the {probe} should GET {path}"
        );
        assert_eq!(
            resolve_port(&c, &get["port"]),
            Some(port),
            "the {probe} does not probe the container's http port {port}"
        );
    }

    let pod = &d["spec"]["template"]["spec"];
    let sc = &c["securityContext"];
    let either = |key: &str| -> Yaml {
        if sc[key].is_null() {
            pod["securityContext"][key].clone()
        } else {
            sc[key].clone()
        }
    };
    assert_eq!(
        either("runAsNonRoot").as_bool(),
        Some(true),
        "the pod must set runAsNonRoot: true"
    );
    assert_eq!(
        either("runAsUser").as_u64(),
        Some(10001),
        "the pod must run as uid 10001, the image's user switchboard"
    );
    assert_eq!(
        either("seccompProfile")["type"].as_str(),
        Some("RuntimeDefault"),
        "the pod must use the RuntimeDefault seccomp profile"
    );
    assert_eq!(
        sc["readOnlyRootFilesystem"].as_bool(),
        Some(true),
        "the container's root filesystem must be read-only"
    );
    assert_eq!(
        sc["allowPrivilegeEscalation"].as_bool(),
        Some(false),
        "the container must set allowPrivilegeEscalation: false"
    );
    assert_ne!(
        sc["privileged"].as_bool(),
        Some(true),
        "the gateway container must not be privileged"
    );
    let drops: Vec<&str> = sc["capabilities"]["drop"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default();
    assert!(
        drops.contains(&"ALL"),
        "the container must drop ALL capabilities, it drops {drops:?}"
    );
    assert!(
        sc["capabilities"]["add"].is_null(),
        "the container must add no capability"
    );
    for kind in ["requests", "limits"] {
        for what in ["cpu", "memory"] {
            assert!(
                !c["resources"][kind][what].is_null(),
                "the container sets no resources.{kind}.{what}"
            );
        }
    }

    // Writable places on a read-only root: the data directory and /tmp.
    let mounts: BTreeMap<String, String> = c["volumeMounts"]
        .as_sequence()
        .expect("the container mounts nothing")
        .iter()
        .filter_map(|m| {
            Some((
                m["mountPath"].as_str()?.to_string(),
                m["name"].as_str()?.to_string(),
            ))
        })
        .collect();
    let volume = |name: &str| -> Yaml {
        pod["volumes"]
            .as_sequence()
            .and_then(|v| v.iter().find(|v| v["name"].as_str() == Some(name)).cloned())
            .unwrap_or_else(|| panic!("the pod has no volume `{name}` that a mount names"))
    };
    let env = deployment_env(TEST_TOKEN);
    let data_dir = env_value(&env, "SWITCHBOARD_DATA_DIR")
        .expect("the container does not set SWITCHBOARD_DATA_DIR")
        .to_string();
    for path in ["/tmp", data_dir.as_str()] {
        let name = mounts.get(path).unwrap_or_else(|| {
            panic!("nothing is mounted at {path}, which the read-only root leaves unwritable")
        });
        assert!(
            !volume(name)["emptyDir"].is_null(),
            "{path} should be an emptyDir"
        );
    }
    let config_path = env_value(&env, "SWITCHBOARD_CONFIG")
        .expect("the container does not set SWITCHBOARD_CONFIG");
    let config_dir = Path::new(config_path)
        .parent()
        .and_then(Path::to_str)
        .unwrap_or_default();
    assert_eq!(
        config_dir, "/etc/switchboard",
        "SWITCHBOARD_CONFIG is not under /etc/switchboard"
    );
    let name = mounts
        .get(config_dir)
        .expect("the ConfigMap is not mounted at /etc/switchboard");
    assert_eq!(
        volume(name)["configMap"]["name"].as_str(),
        k8s_kind("ConfigMap")["metadata"]["name"].as_str(),
        "/etc/switchboard is not the ConfigMap of deploy/k8s/configmap.yaml"
    );
    let file = Path::new(config_path).file_name().and_then(|f| f.to_str());
    assert_eq!(
        file,
        Some("switchboard.toml"),
        "SWITCHBOARD_CONFIG does not name the ConfigMap's key switchboard.toml"
    );

    // Distinct replica ids: each pod's name.
    let id = c["env"]
        .as_sequence()
        .and_then(|e| {
            e.iter()
                .find(|e| e["name"].as_str() == Some("SWITCHBOARD_CLUSTER__REPLICA_ID"))
                .cloned()
        })
        .expect("the container does not set SWITCHBOARD_CLUSTER__REPLICA_ID");
    assert_eq!(
        id["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
        Some("metadata.name"),
        "SWITCHBOARD_CLUSTER__REPLICA_ID should be the pod's name (downward API metadata.name)"
    );
    for secret in [
        "SWITCHBOARD_TOKEN",
        "SWITCHBOARD_PASSPHRASE",
        "SWITCHBOARD_STORE__URL",
    ] {
        let e = c["env"]
            .as_sequence()
            .and_then(|e| {
                e.iter()
                    .find(|e| e["name"].as_str() == Some(secret))
                    .cloned()
            })
            .unwrap_or_else(|| panic!("the container does not set {secret}"));
        assert!(
            !e["valueFrom"]["secretKeyRef"].is_null(),
            "{secret} should come from the Secret, not be written in the Deployment"
        );
    }

    // The stop grace outlasts the gateway's drain.
    let loaded = load_config(&configmap_toml(), "the ConfigMap's switchboard.toml", &env);
    let grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("the pod sets no terminationGracePeriodSeconds");
    assert!(
        grace > loaded.config.gateway.shutdown_grace_secs,
        "terminationGracePeriodSeconds ({grace}) must be longer than gateway.shutdown_grace_secs ({}), or in-flight turns are killed",
        loaded.config.gateway.shutdown_grace_secs
    );
}

#[test]
fn the_service_and_the_disruption_budget_select_the_gateway_pods() {
    let c = deployment_container();
    let port = container_port(&c);
    let s = k8s_kind("Service");
    let ports = s["spec"]["ports"]
        .as_sequence()
        .expect("the Service has no ports");
    let http = ports
        .iter()
        .find(|p| p["name"].as_str() == Some("http"))
        .expect("the Service has no port named http");
    assert_eq!(
        http["port"].as_u64(),
        Some(u64::from(default_port())),
        "the Service's port should be the gateway's {}",
        default_port()
    );
    assert_eq!(
        resolve_port(&c, &http["targetPort"]),
        Some(port),
        "the Service's targetPort does not reach the container's http port {port}"
    );
    let labels = pod_labels();
    let selector = mapping_labels(&s["spec"]["selector"]);
    assert!(
        selects(&selector, &labels),
        "the Service's selector {selector:?} does not match the pods' labels {labels:?}"
    );

    let pdb = k8s_kind("PodDisruptionBudget");
    assert_eq!(
        pdb["spec"]["minAvailable"].as_u64(),
        Some(1),
        "the PodDisruptionBudget should keep minAvailable: 1"
    );
    let selector = mapping_labels(&pdb["spec"]["selector"]["matchLabels"]);
    assert!(
        selects(&selector, &labels),
        "the PodDisruptionBudget's selector {selector:?} does not match the pods' labels {labels:?}"
    );
}

#[test]
fn the_port_and_the_runtime_agree_between_binary_dockerfile_and_offline_build() {
    let port = default_port();
    let runtime = dockerfile_runtime();
    let exposed: Vec<&String> = runtime
        .iter()
        .filter(|l| l.starts_with("EXPOSE "))
        .collect();
    assert_eq!(
        exposed,
        [&format!("EXPOSE {port}")],
        "deploy/Dockerfile should EXPOSE the default bind's port {port}"
    );
    assert_eq!(
        u64::from(port),
        container_port(&deployment_container()),
        "the Dockerfile's EXPOSE and the Deployment's container port differ"
    );
    for want in [
        "USER 10001:10001",
        r#"ENTRYPOINT ["/usr/local/bin/switchboard"]"#,
        r#"CMD ["serve"]"#,
        "ENV SWITCHBOARD_CONFIG=/etc/switchboard/switchboard.toml",
    ] {
        assert!(
            runtime.iter().any(|l| l == want),
            "deploy/Dockerfile's runtime stage lacks `{want}`"
        );
    }
    assert!(
        runtime.iter().any(
            |l| l == "COPY deploy/container/switchboard.toml /etc/switchboard/switchboard.toml"
        ),
        "deploy/Dockerfile does not copy deploy/container/switchboard.toml to /etc/switchboard/switchboard.toml"
    );
    let build = read("Dockerfile");
    assert!(
        build.contains("cargo build --release --locked -p switchboard"),
        "deploy/Dockerfile does not build with `cargo build --release --locked -p switchboard`"
    );

    // The offline image is the same image: each runtime setting of the
    // Dockerfile is one of its `docker import --change` lines.
    let offline = build_offline();
    for l in runtime.iter().filter(|l| {
        [
            "USER ",
            "ENV ",
            "EXPOSE ",
            "ENTRYPOINT ",
            "CMD ",
            "WORKDIR ",
            "STOPSIGNAL ",
        ]
        .iter()
        .any(|k| l.starts_with(k))
    }) {
        assert!(
            offline.contains(&format!("--change '{l}'")),
            "deploy/container/build-offline.sh has no `--change '{l}'`, so its image differs from deploy/Dockerfile's"
        );
    }
    assert!(
        offline.contains("set -euo pipefail"),
        "build-offline.sh should stop at the first failure (set -euo pipefail)"
    );
    assert!(
        offline.contains("--variant=minbase") && offline.contains("/var/cache/switchboard"),
        "build-offline.sh should debootstrap --variant=minbase, cached under /var/cache/switchboard"
    );
    assert!(
        offline.contains("deploy/container/switchboard.toml")
            && offline.contains("etc/switchboard/switchboard.toml"),
        "build-offline.sh does not put deploy/container/switchboard.toml at /etc/switchboard/switchboard.toml"
    );
}

#[test]
fn the_image_name_agrees_across_kubernetes_compose_and_the_offline_build() {
    let tag = offline_default_tag();
    assert_eq!(
        deployment_container()["image"].as_str(),
        Some(tag.as_str()),
        "the Deployment's image is not build-offline.sh's default tag {tag}"
    );
    let c = compose();
    let services = c["services"]
        .as_mapping()
        .expect("deploy/compose.yaml has no services");
    for (name, s) in services {
        let name = name.as_str().unwrap_or_default();
        if name.starts_with("gateway") {
            assert_eq!(
                s["image"].as_str(),
                Some(tag.as_str()),
                "compose service {name}'s image is not build-offline.sh's default tag {tag}"
            );
        }
    }
    assert!(
        read("Dockerfile").contains(&format!("-t {tag}")),
        "deploy/Dockerfile's build command does not tag {tag}"
    );
}

#[test]
fn the_configs_load_with_the_cluster_on_postgresql() {
    let container = read("container/switchboard.toml");
    let configmap = configmap_toml();
    let parse = |text: &str, source: &str| -> toml::Table {
        text.parse()
            .unwrap_or_else(|e| panic!("{source} is not valid TOML: {e}"))
    };
    assert_eq!(
        parse(&configmap, "the ConfigMap's switchboard.toml"),
        parse(&container, "deploy/container/switchboard.toml"),
        "the ConfigMap's switchboard.toml and deploy/container/switchboard.toml say different things: keep them in step"
    );

    let (a, _) = compose_gateways()
        .into_iter()
        .next()
        .expect("deploy/compose.yaml runs no gateway");
    let vars = compose_vars();
    let from_compose: Vec<(String, String)> = compose_env(&compose()["services"][a.as_str()])
        .into_iter()
        .map(|(k, v)| (k, interpolate(&v, &vars)))
        .collect();
    let mut image_env = vec![(
        "SWITCHBOARD_DATA_DIR".to_string(),
        "/var/lib/switchboard".to_string(),
    )];
    image_env.extend(from_compose);
    let cases = [
        (
            "the ConfigMap's switchboard.toml (with the Deployment's environment)",
            configmap.as_str(),
            deployment_env(TEST_TOKEN),
        ),
        (
            "deploy/container/switchboard.toml (with compose's environment)",
            container.as_str(),
            with_data_dir(image_env),
        ),
    ];
    for (source, text, env) in cases {
        let loaded = load_config(text, source, &env);
        let g = &loaded.config.gateway;
        let bind: SocketAddr = g
            .bind
            .parse()
            .unwrap_or_else(|e| panic!("{source}: gateway.bind is not an address: {e}"));
        assert!(
            bind.ip().is_unspecified(),
            "{source}: a container must bind every address (0.0.0.0), it binds {}",
            g.bind
        );
        assert_eq!(
            bind.port(),
            default_port(),
            "{source}: the port is not the one the image exposes"
        );
        assert!(
            g.behind_proxy,
            "{source}: plain HTTP on 0.0.0.0 needs gateway.behind_proxy = true"
        );
        assert_eq!(
            loaded.config.store.encryption.mode.as_str(),
            "passphrase",
            "{source}: replicas share one keyring, unlocked by a passphrase ([store.encryption] mode = \"passphrase\")"
        );
        assert_eq!(
            loaded.config.sandbox.mode,
            switchboard_sandbox::SandboxMode::Off,
            "{source}: the manifests mount no Docker engine, so [sandbox] mode should be \"off\" by default"
        );
        assert!(
            !loaded.config.sandbox.host_exec,
            "{source}: host_exec would run the tools inside the gateway's container"
        );
        let cluster = &loaded.config.cluster;
        assert!(
            cluster.enabled,
            "{source}: [cluster] enabled should be true"
        );
        let url = loaded
            .config
            .store
            .url
            .as_deref()
            .unwrap_or_else(|| panic!("{source}: store.url is not set by the environment"));
        assert!(
            url.starts_with("postgres://") || url.starts_with("postgresql://"),
            "{source}: store.url should be a PostgreSQL URL, it is one to `{}`",
            url.split('@').next_back().unwrap_or("?")
        );
        assert_eq!(
            cluster.replica_id.as_deref(),
            env_value(&env, "SWITCHBOARD_CLUSTER__REPLICA_ID"),
            "{source}: cluster.replica_id is not the one the environment gives"
        );
        // The replica writes its copy of the shared keyring: the config
        // directory is read-only, the data directory is not.
        let data_dir = loaded
            .config
            .gateway
            .data_dir
            .clone()
            .unwrap_or_else(|| panic!("{source}: no data directory is set"));
        let keyring = loaded
            .config
            .store
            .encryption
            .keyring
            .clone()
            .unwrap_or_else(|| {
                panic!(
                    "{source}: [store.encryption] keyring is unset, so the keyring would be written beside the read-only config"
                )
            });
        assert!(
            keyring.starts_with(&data_dir),
            "{source}: the keyring {} is outside the data directory {}, the one writable place",
            keyring.display(),
            data_dir.display()
        );
    }
}

#[test]
fn the_secret_holds_marked_placeholders_that_refuse_to_start() {
    let s = k8s_kind("Secret");
    assert!(
        s["data"].is_null(),
        "deploy/k8s/secret.yaml should use stringData (readable placeholders), not base64 data"
    );
    let data = secret_data();
    for key in [
        "SWITCHBOARD_TOKEN",
        "SWITCHBOARD_PASSPHRASE",
        "SWITCHBOARD_STORE__URL",
    ] {
        let v = data
            .get(key)
            .unwrap_or_else(|| panic!("deploy/k8s/secret.yaml has no {key}"));
        assert!(
            v.contains("REPLACE-ME"),
            "deploy/k8s/secret.yaml's {key} should be a placeholder marked REPLACE-ME"
        );
    }
    // Applied unedited, the gateway does not start with a known token.
    let token = data["SWITCHBOARD_TOKEN"].clone();
    let err = load_str(&configmap_toml(), "configmap", &deployment_env(&token))
        .expect_err("the Secret's placeholder token was accepted: a gateway could run with it");
    assert!(
        err.errors.iter().any(|e| e.key == "gateway.auth.token"),
        "the placeholder token is refused, but not for gateway.auth.token: {err}"
    );
}

#[test]
fn compose_runs_postgres_and_two_distinct_hardened_gateways() {
    let c = compose();
    let pg = &c["services"]["postgres"];
    assert!(
        pg["image"]
            .as_str()
            .is_some_and(|i| i == "postgres:15" || i.starts_with("postgres:15")),
        "compose's postgres service should run PostgreSQL 15, it runs {:?}",
        pg["image"]
    );
    let pg_check: Vec<&str> = pg["healthcheck"]["test"]
        .as_sequence()
        .map(|s| s.iter().filter_map(Yaml::as_str).collect())
        .unwrap_or_default();
    assert!(
        pg_check.contains(&"pg_isready"),
        "compose's postgres healthcheck should run pg_isready, it runs {pg_check:?}"
    );
    assert!(
        pg["volumes"]
            .as_sequence()
            .is_some_and(|v| v.iter().any(|v| v
                .as_str()
                .is_some_and(|v| v.ends_with(":/var/lib/postgresql/data")))),
        "compose's postgres keeps its data in no volume"
    );

    let gateways = compose_gateways();
    assert_eq!(
        gateways.len(),
        2,
        "deploy/compose.yaml should run two gateways, it runs {:?}",
        gateways.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    let port = default_port().to_string();
    let vars = compose_vars();
    let mut ids = BTreeSet::new();
    let mut host_ports = BTreeSet::new();
    for (name, s) in &gateways {
        let env: Vec<(String, String)> = compose_env(s)
            .into_iter()
            .map(|(k, v)| (k, interpolate(&v, &vars)))
            .collect();
        assert_eq!(
            env_value(&env, "SWITCHBOARD_CLUSTER__ENABLED"),
            Some("true"),
            "compose service {name} does not set SWITCHBOARD_CLUSTER__ENABLED=true"
        );
        let url = env_value(&env, "SWITCHBOARD_STORE__URL").unwrap_or_else(|| {
            panic!("compose service {name} does not set SWITCHBOARD_STORE__URL")
        });
        assert!(
            url.starts_with("postgres://") && url.contains("@postgres:5432/"),
            "compose service {name}'s SWITCHBOARD_STORE__URL does not reach the postgres service"
        );
        for secret in ["SWITCHBOARD_TOKEN", "SWITCHBOARD_PASSPHRASE"] {
            assert!(
                env_value(&env, secret).is_some() || !s["env_file"].is_null(),
                "compose service {name} gets no {secret}"
            );
        }
        let id = env_value(&env, "SWITCHBOARD_CLUSTER__REPLICA_ID")
            .map(str::to_string)
            .or_else(|| s["hostname"].as_str().map(str::to_string))
            .unwrap_or_else(|| panic!("compose service {name} has no replica id nor hostname"));
        assert!(
            ids.insert(id.clone()),
            "two compose gateways share the replica id {id}"
        );
        for p in s["ports"].as_sequence().into_iter().flatten() {
            let p = p.as_str().unwrap_or_else(|| {
                panic!("compose service {name}: write ports as \"host:container\" strings")
            });
            let parts: Vec<&str> = p.split(':').collect();
            assert_eq!(
                parts.last().copied(),
                Some(port.as_str()),
                "compose service {name} publishes {p}, not the gateway's port {port}"
            );
            if parts.len() >= 2 {
                let host = format!(
                    "{}:{}",
                    parts[..parts.len() - 2].join(":"),
                    parts[parts.len() - 2]
                );
                assert!(
                    host_ports.insert(host.clone()),
                    "two compose gateways publish the same host port {host}"
                );
            }
        }
        assert_eq!(
            s["user"].as_str(),
            Some("10001:10001"),
            "compose service {name} should run as 10001:10001"
        );
        assert_eq!(
            s["read_only"].as_bool(),
            Some(true),
            "compose service {name} should have read_only: true"
        );
        assert!(
            s["tmpfs"].as_sequence().is_some_and(|t| t
                .iter()
                .any(|t| t.as_str().is_some_and(|t| t.starts_with("/tmp")))),
            "compose service {name} has no tmpfs at /tmp (its root is read-only)"
        );
        let caps: Vec<&str> = s["cap_drop"]
            .as_sequence()
            .map(|c| c.iter().filter_map(Yaml::as_str).collect())
            .unwrap_or_default();
        assert!(
            caps.contains(&"ALL"),
            "compose service {name} should drop ALL capabilities"
        );
        assert!(
            !s["healthcheck"]["test"].is_null(),
            "compose service {name} has no healthcheck"
        );
        assert!(
            !s["depends_on"]["postgres"].is_null(),
            "compose service {name} does not wait for postgres"
        );
        let grace = s["stop_grace_period"]
            .as_str()
            .map(compose_secs)
            .unwrap_or(10);
        assert!(
            grace > Config::default().gateway.shutdown_grace_secs,
            "compose service {name}'s stop_grace_period ({grace} s) must outlast gateway.shutdown_grace_secs"
        );
        assert_ne!(
            s["privileged"].as_bool(),
            Some(true),
            "compose service {name} must not be privileged"
        );
    }
}

#[test]
fn the_systemd_template_runs_one_hardened_replica_per_instance() {
    let unit = read("systemd/switchboard.service");
    let template = read("systemd/switchboard@.service");
    for line in unit.lines().map(str::trim).filter(|l| {
        [
            "NoNewPrivileges=",
            "ProtectSystem=",
            "ProtectHome=",
            "PrivateTmp=",
            "User=",
            "KillSignal=",
        ]
        .iter()
        .any(|k| l.starts_with(k))
    }) {
        assert!(
            template.lines().any(|l| l.trim() == line),
            "deploy/systemd/switchboard@.service lacks `{line}` of switchboard.service"
        );
    }
    for want in [
        "EnvironmentFile=/etc/switchboard/replica-%i.env",
        "Environment=SWITCHBOARD_CLUSTER__REPLICA_ID=%i",
        "Environment=SWITCHBOARD_DATA_DIR=/var/lib/switchboard/%i",
        "ReadWritePaths=/var/lib/switchboard/%i",
    ] {
        assert!(
            template.lines().any(|l| l.trim() == want),
            "deploy/systemd/switchboard@.service lacks `{want}`"
        );
    }
}

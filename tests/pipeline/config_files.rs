//! The shipped configuration files load and validate for every service that uses them.

use std::path::PathBuf;

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

fn load<T: serde::de::DeserializeOwned + platform::settings::Validate>(file: &str) -> T {
    platform::settings::load_from(Some(path(file)), Vec::<(String, String)>::new())
        .unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn local_and_docker_configs_start_every_service() {
    for file in ["config/local.toml", "config/docker.toml"] {
        let _: ingress::Settings = load(file);
        let _: enrich::Settings = load(file);
        let _: service_base::BaseSettings = load(file);
        let _: ship::Settings = load(file);
        let _: notify_webflow::Settings = load(file);
        let warehouse: warehouse::Settings = load(file);
        assert!(warehouse.warehouse.auto_pack, "{file}: the local stack packs by itself");
        let reconcile: reconciliation::Settings = load(file);
        assert_eq!(reconcile.webflow.sites.len(), 1);
    }
}

//! A headless Chromium per test, and helpers that wait for elements.

use e2e::stack::free_port;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// At most two browsers at once on a 2-core machine.
static BROWSERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

pub const WAIT: Duration = Duration::from_secs(20);

/// chromedriver and its browser session; chromedriver is killed when this is dropped.
pub struct Browser {
    pub client: Client,
    pub base: String,
    _driver: Driver,
    _permit: tokio::sync::SemaphorePermit<'static>,
}

/// The chromedriver process, killed on drop (also when the test panics).
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        // Killing chromedriver ends its Chromium too.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromedriver() -> String {
    std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into())
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless, tablet-sized Chromium.
    pub async fn start(base: &str) -> Self {
        let permit = BROWSERS.acquire().await.unwrap();
        let port = free_port();
        let driver = Driver(
            Command::new(chromedriver())
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("chromedriver must be installed (apt-get install chromium chromium-driver)"),
        );
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1024,900", "--hide-scrollbars", "--lang=en-US"],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + WAIT;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(capabilities.clone())
                .connect(&url)
                .await
            {
                Ok(client) => break client,
                Err(error) => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "chromedriver did not start: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        Self {
            client,
            base: base.to_owned(),
            _driver: driver,
            _permit: permit,
        }
    }

    pub async fn goto(&self, path: &str) {
        self.client.goto(&format!("{}{path}", self.base)).await.unwrap();
    }

    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Waits for an element matching `css`.
    pub async fn find(&self, css: &str) -> Element {
        self.client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    /// Waits until the element's text contains `wanted`.
    pub async fn wait_text(&self, css: &str, wanted: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = match self.client.find(Locator::Css(css)).await {
                Ok(element) => element.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if text.contains(wanted) {
                return text;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`{css}` never contained {wanted:?}; last: {text:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn fill(&self, css: &str, value: &str) {
        let input = self.find(css).await;
        input.clear().await.unwrap();
        input.send_keys(value).await.unwrap();
    }

    pub async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// Signs in with `token` from the sign-in page and waits for the page behind it.
    pub async fn sign_in(&self, token: &str) {
        self.goto("/console/overview").await;
        self.find("#token").await;
        assert!(
            self.path().await.starts_with("/console/sign-in"),
            "signed-out: {}",
            self.path().await
        );
        self.fill("#token", token).await;
        self.click("#sign-in").await;
        self.find("#signed-in").await;
    }

    /// The session cookie, for plain HTTP requests with the browser's session.
    pub async fn session_cookie(&self) -> String {
        let cookie = self.client.get_named_cookie("wms_console").await.unwrap();
        format!("wms_console={}", cookie.value())
    }

    /// Saves a PNG of the page to target/screenshots/<name>.png, or to docs/screenshots (what
    /// docs/console.md shows) with `UPDATE_SCREENSHOTS=1` (`make screenshots`), so an ordinary
    /// test run leaves the work tree clean.
    pub async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "the page renders to a PNG");
        let folder = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
            "../docs/screenshots"
        } else {
            "../target/screenshots"
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

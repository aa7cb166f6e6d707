//! A real headless Chromium driven over WebDriver: `chromedriver` started on a
//! free loopback port, one browser session per person, every command run on a
//! small tokio runtime so the tests stay plain `#[test]` functions.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the screenshots of each page go (test artifacts).
pub fn screenshot_dir() -> PathBuf {
    crate::support::root().join("target/console-screenshots")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `chromedriver` process (killed on drop) and the runtime its sessions run on.
pub struct Driver {
    child: Child,
    url: String,
    pub rt: tokio::runtime::Runtime,
}

impl Driver {
    /// Starts chromedriver (Debian's `chromium-driver`) and waits until it answers.
    pub fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver runs (apt-get install chromium chromium-driver; `make test` does)",
            );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::blocking::Client::new();
        while http
            .get(format!("{url}/status"))
            .send()
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        Driver { child, url, rt }
    }

    /// A new headless browser session: no sandbox (root in CI), no GPU, no /dev/shm,
    /// no background network traffic, a fixed window so screenshots have one size.
    pub fn session(&self) -> Browser<'_> {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,900", "--hide-scrollbars", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-default-apps", "--disable-sync", "--disable-extensions",
                    "--force-device-scale-factor=1", "--lang=en-US"
                ]
            }
        });
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let client = self.rt.block_on(async {
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps)
                .connect(&self.url)
                .await
                .expect("a chromium session")
        });
        Browser {
            client: Some(client),
            driver: self,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser session.
pub struct Browser<'a> {
    client: Option<Client>,
    driver: &'a Driver,
}

impl Browser<'_> {
    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    fn run<T>(
        &self,
        f: impl std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    ) -> T {
        self.driver.rt.block_on(f).expect("WebDriver command")
    }

    pub fn goto(&self, url: &str) {
        self.run(self.c().goto(url));
    }

    pub fn path(&self) -> String {
        self.run(self.c().current_url()).path().to_string()
    }

    pub fn url(&self) -> String {
        self.run(self.c().current_url()).to_string()
    }

    pub fn title(&self) -> String {
        self.run(self.c().title())
    }

    /// Text of the first element matching `css`.
    pub fn text(&self, css: &str) -> String {
        let c = self.c();
        self.run(async { c.find(Locator::Css(css)).await?.text().await })
    }

    /// Texts of every element matching `css`.
    pub fn texts(&self, css: &str) -> Vec<String> {
        let c = self.c();
        self.run(async {
            let mut out = Vec::new();
            for e in c.find_all(Locator::Css(css)).await? {
                out.push(e.text().await?);
            }
            Ok(out)
        })
    }

    /// Number of elements matching `css`.
    pub fn count(&self, css: &str) -> usize {
        self.run(self.c().find_all(Locator::Css(css))).len()
    }

    pub fn fill(&self, css: &str, value: &str) {
        let c = self.c();
        self.run(async {
            let e = c.find(Locator::Css(css)).await?;
            e.clear().await?;
            e.send_keys(value).await
        });
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        let c = self.c();
        self.run(async { c.find(Locator::Css(css)).await?.click().await });
    }

    /// Runs `script` in the page and returns its value.
    pub fn js(&self, script: &str) -> Value {
        self.run(self.c().execute(script, vec![]))
    }

    /// The page source.
    pub fn source(&self) -> String {
        self.run(self.c().source())
    }

    /// (value, httpOnly, sameSite) of a cookie.
    pub fn cookie(&self, name: &str) -> Option<(String, Option<bool>, String)> {
        let c = self.c();
        self.driver
            .rt
            .block_on(c.get_named_cookie(name))
            .ok()
            .map(|k| {
                (
                    k.value().to_string(),
                    k.http_only(),
                    format!("{:?}", k.same_site()),
                )
            })
    }

    /// Writes a PNG of the viewport to `dir/name.png` and returns its bytes.
    pub fn screenshot(&self, dir: &Path, name: &str) -> Vec<u8> {
        let png = self.run(self.c().screenshot());
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), &png).unwrap();
        png
    }

    /// Waits (bounded) until `done` holds; `what` says what was awaited if it never does.
    pub fn wait_for(&self, mut done: impl FnMut() -> bool) {
        self.wait_until("the page to change", &mut done);
    }

    fn wait_until(&self, what: &str, done: &mut dyn FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "waited for {what}; the browser shows {} ({})",
                self.url(),
                self.title()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (bounded) until the browser shows `path`.
    pub fn wait_path(&self, path: &str) {
        self.wait_until(&format!("path {path}"), &mut || self.path() == path);
    }

    /// Waits (bounded) until the page title starts with `title`.
    pub fn wait_title(&self, title: &str) {
        self.wait_until(&format!("title {title:?}"), &mut || {
            self.title().starts_with(title)
        });
    }
}

impl Drop for Browser<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.driver.rt.block_on(c.close());
        }
    }
}

/// Accessibility basics of the page shown: a title and a language, every form control
/// labelled, every button named, one `h1` and no heading level skipped.
pub const A11Y_CHECK: &str = r#"
const problems = [];
if (!document.title.trim()) problems.push('no <title>');
if (!document.documentElement.lang) problems.push('no lang on <html>');
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  const byFor = el.id && document.querySelector('label[for="' + el.id + '"]');
  if (!(byFor || el.closest('label') || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')))
    problems.push('unlabelled control ' + el.outerHTML);
}
for (const b of document.querySelectorAll('button')) {
  if (!b.textContent.trim() && !b.getAttribute('aria-label')) problems.push('unnamed button ' + b.outerHTML);
}
const hs = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')];
if (document.querySelectorAll('h1').length !== 1) problems.push('expected one h1, found ' + document.querySelectorAll('h1').length);
let last = 0;
for (const h of hs) {
  const level = Number(h.tagName[1]);
  if (level > last + 1) problems.push('heading ' + h.tagName + ' "' + h.textContent.trim() + '" follows h' + last);
  last = level;
}
for (const t of document.querySelectorAll('table')) {
  if (!t.querySelector('th')) problems.push('table without header cells');
}
return problems;
"#;

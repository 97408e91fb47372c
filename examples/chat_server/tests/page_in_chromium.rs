//! The chat page (`src/index.html`) rendered by a real browser: headless Chromium, when
//! one is installed (`chromium` on the PATH, or the `CHROMIUM` environment variable
//! naming the binary). Without one each test says so on stderr and passes: CI machines
//! have only the Rust toolchain, so these run where a browser is (`apt-get install
//! chromium`).
//!
//! Each test loads the page, with a probe script appended, into an iframe of the width
//! it wants. The page's own script defines everything, then fails to connect (the page
//! has no host), which is harmless here: the probe feeds the page events through
//! `onEvent`, the function the page hands every decoded Push frame, measures the result
//! in the browser, and leaves it as JSON in a `<pre id="probe">` that `--dump-dom`
//! prints.
//!
//! - **Narrow screens**: at 420 px the log column was 146 px, narrower than the member
//!   column beside it (178 px against 194 px in this test's Chromium). Now the members go under the log below 40rem; at desktop width
//!   they stay beside it.
//! - **Names isolated**: every name, room and chat line is in its own `<bdi>`, so a
//!   right-to-left override in one cannot reorder the rest of the line.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const PAGE: &str = include_str!("../src/index.html");

/// The longest Chromium may take to load the page and dump it (a loaded 2-core machine).
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(90);

/// The Chromium binary, if there is one.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Loads the page with `probe` (JavaScript that evaluates to a JSON-serialisable value)
/// appended, in a window `width` px wide; returns the probe's value. `None`: no
/// Chromium here.
fn probe_page(width: u32, probe: &str) -> Option<Value> {
    let Some(chromium) = chromium() else {
        eprintln!("skipped: no Chromium (install `chromium` or set CHROMIUM=/path/to/it)");
        return None;
    };
    let dir = std::env::temp_dir().join(format!(
        "chat-page-{}-{width}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    // The page goes into an iframe `width` px wide: headless Chromium makes no window
    // narrower than 500 px, and the iframe is the page's viewport (its media queries
    // see `width`). `srcdoc` gives the iframe this document's origin, so the probe
    // inside it can leave its result out here, where `--dump-dom` prints it.
    let script = format!(
        "<script>\n\"use strict\";\n{{\nconst result = (() => {{ {probe} }})();\n\
         const pre = parent.document.createElement(\"pre\");\npre.id = \"probe\";\n\
         pre.textContent = JSON.stringify(result);\nparent.document.body.append(pre);\n}}\n\
         </script>\n</body>"
    );
    assert_eq!(PAGE.matches("</body>").count(), 1);
    let page = PAGE.replace("</body>", &script);
    let srcdoc = page.replace('&', "&amp;").replace('"', "&quot;");
    let harness = format!(
        "<!doctype html>\n<html><body style=\"margin:0\">\
         <iframe style=\"border:0;width:{width}px;height:900px\" srcdoc=\"{srcdoc}\"></iframe>\
         </body></html>\n"
    );
    let file = dir.join("page.html");
    std::fs::write(&file, harness).unwrap();

    let mut child = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={},1000", width.max(500) + 100))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start Chromium");
    // Read stdout on a thread so that a hung browser can be killed at the deadline.
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut dom = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut dom).map(|_| dom)
    });
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Chromium did not dump the page within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let dom = reader.join().unwrap().expect("Chromium's output is UTF-8");
    let _ = std::fs::remove_dir_all(&dir);

    let start = dom
        .find("<pre id=\"probe\">")
        .unwrap_or_else(|| panic!("no probe result: the probe threw?\n{dom}"))
        + "<pre id=\"probe\">".len();
    let end = start + dom[start..].find("</pre>").unwrap();
    let json = dom[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&");
    Some(serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}")))
}

/// Boxes of the log and the member list, and the window width.
const LAYOUT_PROBE: &str = r#"
    const box = (id) => {
        const r = document.getElementById(id).getBoundingClientRect();
        return { left: r.left, right: r.right, top: r.top, bottom: r.bottom, width: r.width };
    };
    return { window: window.innerWidth, log: box("log"), members: box("members") };
"#;

#[test]
fn on_a_narrow_screen_the_log_takes_the_width_and_members_go_under_it() {
    let Some(layout) = probe_page(420, LAYOUT_PROBE) else {
        return;
    };
    let number = |path: &str| {
        layout
            .pointer(path)
            .and_then(Value::as_f64)
            .unwrap_or_else(|| panic!("{path} in {layout}"))
    };
    assert_eq!(number("/window"), 420.0, "the window is as asked: {layout}");
    let (log, members) = (number("/log/width"), number("/members/width"));
    assert!(
        log >= members && log >= 0.8 * 420.0,
        "the log is {log} px wide, the members {members} px, at 420 px: {layout}"
    );
    assert!(
        number("/members/top") >= number("/log/bottom"),
        "the members are under the log: {layout}"
    );
}

#[test]
fn on_a_wide_screen_the_members_stay_beside_the_log() {
    let Some(layout) = probe_page(1200, LAYOUT_PROBE) else {
        return;
    };
    let number = |path: &str| layout.pointer(path).and_then(Value::as_f64).unwrap();
    assert!(
        number("/members/left") >= number("/log/right"),
        "side by side: {layout}"
    );
    assert!(
        number("/log/width") > 2.0 * number("/members/width"),
        "{layout}"
    );
}

#[test]
fn names_rooms_and_lines_are_isolated_so_an_override_reorders_nothing_else() {
    // Events as the server would send them, each carrying U+202E RIGHT-TO-LEFT OVERRIDE
    // (the server refuses it in names and rooms now; this is the page's own defence,
    // and the only one for chat text). Then: every text node holding U+202E must be
    // the whole content of an element the browser isolates.
    let probe = r#"
        const rlo = "\u202E";
        onEvent({ type: "welcome", client: 1, presence_id: 1, name: "client 1", max_message: 65536 });
        onEvent({ type: "members", room: "rust", members: [
            { client: 1, name: "Me" }, { client: 2, name: "Eve" + rlo + "evil" } ] });
        onEvent({ type: "message", room: "rust", from: 2, name: "Eve" + rlo, text: "hello" });
        onEvent({ type: "message", room: "rust", from: 2, name: "Eve", text: "hi" + rlo + " there" });
        onEvent({ type: "joined", room: "rust", client: 3, name: "Mallory" + rlo, members: 3 });
        onEvent({ type: "left", room: "rust", client: 3, name: "Mallory" + rlo, members: 2, reason: "left" });
        onEvent({ type: "error", error: "quoted " + rlo + " input" });
        const found = [];
        for (const root of [document.getElementById("log"), document.getElementById("members")]) {
            const walk = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
            for (let node = walk.nextNode(); node; node = walk.nextNode()) {
                if (!node.data.includes(rlo)) continue;
                const parent = node.parentElement;
                found.push({
                    text: node.data,
                    tag: parent.tagName,
                    bidi: getComputedStyle(parent).unicodeBidi,
                    alone: parent.textContent === node.data,
                });
            }
        }
        return found;
    "#;
    let Some(found) = probe_page(1200, probe) else {
        return;
    };
    let found = found.as_array().expect("a list");
    // The member list, two lines, a join, a leave, an error.
    assert_eq!(found.len(), 6, "{found:?}");
    for node in found {
        assert_eq!(node["bidi"], "isolate", "not isolated: {node}");
        assert_eq!(node["alone"], true, "isolated with other text: {node}");
    }
}

//! The published signing test vectors and the copy-paste signing examples in docs/.

use std::process::Command;

use crate::helpers::*;

#[test]
fn published_test_vectors_match_the_implementation() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/test-vectors.json"
    ))
    .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 4);
    for v in vectors {
        let fields: Vec<(String, String)> = v["fields"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        let canonical =
            kakehashi::signing::canonical(fields.iter().map(|(a, b)| (a.as_str(), b.as_str())));
        assert_eq!(canonical, v["canonical"].as_str().unwrap(), "{}", v["name"]);
        let secret = v["secret"].as_str().unwrap();
        assert_eq!(
            kakehashi::signing::sign(secret, &canonical),
            v["signature"].as_str().unwrap(),
            "{}",
            v["name"]
        );
        assert!(kakehashi::signing::verify(
            secret,
            &canonical,
            v["signature"].as_str().unwrap()
        ));
    }
}

/// Runs a docs/examples signing script against the running server and opens the printed link;
/// `None` when `program` is not installed and the run set `KAKEHASHI_SKIP_EXAMPLES=1`.
async fn run_example(app: &TestApp, program: &str, script: &str) -> Option<String> {
    if Command::new(program).arg("--version").output().is_err() {
        example_program_missing(script, program);
        return None;
    }
    let m = app.merchant().await;
    let path = format!("{}/docs/examples/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(program)
        .arg(&path)
        .env("BASE_URL", &app.base)
        .env("MERCHANT_ID", &m.id)
        .env("KEY_ID", &m.key_id)
        .env("SECRET", &m.secret)
        .env("ORDER_ID", format!("ex-{}", script.replace('.', "-")))
        .env("RETURN_URL", format!("{SHOP}/thanks"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let r = app.get(&url, UA_PC).await;
    let status = r.status();
    let body = r.text().await.unwrap();
    assert_eq!(
        status, 200,
        "{script} produced a link the server refused: {body}"
    );
    assert!(body.contains("name=\"method\""));
    Some(body)
}

async fn signing_examples_produce_links_the_server_accepts(app: TestApp) {
    run_example(&app, "bash", "sign.sh").await;
    run_example(&app, "python3", "sign.py").await;
    run_example(&app, "node", "sign.js").await;
    run_example(&app, "php", "sign.php").await;
}
both!(signing_examples_produce_links_the_server_accepts);

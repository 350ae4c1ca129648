//! Entry point: parse the command line, set up logging, run the chosen command.

use clap::Parser;
use kakehashi::cli::{self, Cli, Command};
use kakehashi::db::Db;
use kakehashi::startup::App;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    match args.global.log_format {
        cli::LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
        // Span fields flattened into the line's `span` object: the request id is in every line
        // written while serving a request.
        cli::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .with_env_filter(filter)
            .init(),
    }
    // No command: `serve` with its settings from the environment (the README's quick start).
    let command = args
        .command
        .unwrap_or_else(|| Command::Serve(Box::new(cli::ServeArgs::from_env())));
    match command {
        Command::Serve(s) => serve(s.config(&args.global)?).await,
        Command::Merchant(cmd) => {
            let config = args.global.config()?;
            let db = Db::connect(&config.database_url).await?;
            let registry = kakehashi::startup::registry(&config, &db).await?;
            cli::merchant(&db, &registry, &config, *cmd).await
        }
        Command::Processor(cmd) => {
            let config = args.global.config()?;
            let db = Db::connect(&config.database_url).await?;
            let registry = kakehashi::startup::registry(&config, &db).await?;
            cli::processor(&db, &registry, cmd).await
        }
        Command::Keys(cmd) => {
            let config = args.global.config()?;
            let keyring = config.keyring()?;
            if matches!(cmd, cli::KeysCmd::GenerateMaster) {
                return cli::keys_offline(cmd);
            }
            let db = Db::connect(&config.database_url).await?;
            cli::keys(&db, &keyring, cmd).await
        }
        Command::Payment(cmd) => {
            // Build the app state (without listening) so actions reach the same connectors.
            let mut config = args.global.config()?;
            config.addr = "127.0.0.1:0".parse()?;
            let app = App::build(config).await?;
            cli::payment(&app.state, cmd).await
        }
        Command::Notify(cmd) => {
            let db = Db::connect(&args.global.database_url).await?;
            cli::notify(&db, cmd).await
        }
        Command::Sandbox(cmd) => {
            let db = Db::connect(&args.global.database_url).await?;
            cli::sandbox(&db, cmd).await
        }
        Command::Subscription(cmd) => {
            let config = args.global.config()?;
            let db = Db::connect(&config.database_url).await?;
            let registry = kakehashi::startup::registry(&config, &db).await?;
            cli::subscription(&db, &registry, cmd).await
        }
        Command::Repeat(cmd) => {
            // The app state (without listening): registering reaches the same connectors.
            let mut config = args.global.config()?;
            config.addr = "127.0.0.1:0".parse()?;
            let app = App::build(config).await?;
            cli::repeat(&app.state, cmd).await
        }
        Command::Mail(cmd) => cli::mail(&args.global.config()?, cmd).await,
        Command::Settlement(cmd) => {
            let db = Db::connect(&args.global.database_url).await?;
            cli::settlement(&db, cmd).await
        }
        Command::Owner(cmd) => {
            let config = args.global.config()?;
            let db = Db::connect(&config.database_url).await?;
            cli::owner(&db, &config.keyring()?, cmd).await
        }
        Command::User(cmd) => {
            let config = args.global.config()?;
            let db = Db::connect(&config.database_url).await?;
            // Enrolment links point at the public URL (KAKEHASHI_PUBLIC_URL, else the address).
            let public = config
                .public_url
                .clone()
                .unwrap_or_else(|| format!("http://{}", config.addr));
            cli::user(&db, &config.keyring()?, &public, cmd).await
        }
    }
}

/// Serves until SIGTERM or Ctrl-C, then drains requests and stops the workers; exits 0.
async fn serve(config: kakehashi::config::Config) -> anyhow::Result<()> {
    // Listen for the stop signals before announcing the address, so none is missed.
    let stop = kakehashi::startup::shutdown_signal();
    let app = App::build(config).await?;
    let public = app.state.public_url.to_string();
    let created = cli::ensure_demo(&app.state.db, &app.state.keys, &public).await?;
    // The demo admin is made with the demo merchant, on first start only.
    let admin = match created {
        Some(_) => {
            kakehashi::console::users::ensure_demo_admin(
                &app.state.db,
                &app.state.keys,
                app.state.now_ms(),
            )
            .await?
        }
        None => None,
    };
    let link = cli::demo_link(&app.state.db, &app.state.keys, &public).await?;
    println!("\nKakehashi checkout listening on http://{}", app.addr);
    println!("Demo merchant: m_demo (test mode)");
    if let Some(secret) = created {
        println!("Demo signing secret (shown once): {secret}");
        if let Some(m) = kakehashi::db::merchants::get(&app.state.db, "m_demo").await? {
            if let Some(whsec) = m.webhook_secrets(&app.state.keys)?.first() {
                println!("Demo webhook secret (shown once): {whsec}");
            }
        }
    }
    println!("Open this signed checkout link:\n\n  {link}\n");
    println!("Merchant console: {public}/console/login");
    if let Some(u) = admin {
        println!("Demo console admin (shown once):");
        cli::print_credentials(&u);
    } else {
        println!(
            "Demo console admin: {}",
            kakehashi::console::users::DEMO_EMAIL
        );
    }
    println!();
    app.run_until(stop).await?;
    Ok(())
}

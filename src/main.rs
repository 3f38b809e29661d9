//! The `roomcast` command: serve (default), migrate, back up, and user administration.

use std::{io::Read, process::ExitCode};

use clap::{Parser, Subcommand};
use roomcast::{
    Application,
    config::Settings,
    db::{AppliedBy, Db},
    domain::{Password, Role, Username},
    http::{auth, telemetry},
};

/// jemalloc returns freed memory to the system after a few seconds (glibc keeps large freed
/// blocks in its arenas once it has raised its mmap threshold), and holds a little less per
/// stream (docs/performance.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(version, about = "Multi-room chat over Server-Sent Events")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Write a consistent copy of the SQLite database to the new file PATH, safe while
    /// servers write; serving that file as `database.url` restores it. On PostgreSQL it
    /// says to use pg_dump and exits 2.
    Backup {
        /// The file to create.
        path: std::path::PathBuf,
    },
    /// Manage accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create an account; the password is read from stdin (not echoed on a terminal).
    Create {
        /// 3-32 chars of A-Z a-z 0-9 _
        name: String,
        /// Make the account an admin.
        #[arg(long)]
        admin: bool,
    },
    /// Set an account's role. A former admin's open streams leave, within
    /// `database.account_poll_ms`, the private rooms it is not a member of.
    SetRole {
        /// The account.
        name: String,
        /// `admin` or `user`.
        #[arg(value_parser = ["admin", "user"])]
        role: String,
    },
    /// List accounts.
    List,
    /// Ban an account: its sessions end and it cannot log in. Running servers close its open
    /// streams within `database.account_poll_ms` (on PostgreSQL, every node at once).
    Ban {
        /// The account.
        name: String,
    },
    /// Lift a ban: the account may log in again.
    Unban {
        /// The account.
        name: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("roomcast: {e:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init_tracing(&settings.log.filter);
    match run(cli.command.unwrap_or(Command::Serve), settings).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("roomcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `roomcast backup PATH`: 0 when the copy is written, 1 when it failed, 2 on PostgreSQL.
async fn backup(settings: &Settings, path: &std::path::Path) -> ExitCode {
    let done = async {
        let db = Db::open(&settings.database).await?;
        let written = db.backup_to(path).await;
        db.close().await;
        written
    };
    match done.await {
        Ok(true) => {
            println!("backup written to {}", path.display());
            ExitCode::SUCCESS
        }
        Ok(false) => {
            eprintln!(
                "roomcast: the database is PostgreSQL: back it up with pg_dump \
                 (pg_dump -Fc -f roomcast.dump <database>; restore with pg_restore), see the README"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("roomcast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve => {
            let app = Application::build(settings).await?;
            tracing::info!(port = app.port(), "roomcast listening");
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            Db::connect(&settings.database).await?;
            println!("database is up to date");
            Ok(ExitCode::SUCCESS)
        }
        Command::User { command } => {
            let db = Db::connect(&settings.database).await?;
            user_command(&db, &settings, command).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backup { path } => Ok(backup(&settings, &path).await),
    }
}

async fn user_command(db: &Db, settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Create { name, admin } => {
            let username = Username::parse(&name)?;
            let password = Password::parse(read_password()?)?;
            let role = if admin { Role::Admin } else { Role::User };
            let passwords = roomcast::password::PasswordPool::new(&settings.password)?;
            let user = auth::create_user(db, &passwords, &username, password, role).await?;
            println!(
                "created {} ({}) as {}",
                user.username,
                user.id,
                role.as_str()
            );
        }
        UserCommand::SetRole { name, role } => {
            let role =
                Role::parse(&role).ok_or_else(|| anyhow::anyhow!("role is admin or user"))?;
            let user = db
                .set_role(&name, role, AppliedBy::Servers)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user named {name}"))?;
            println!("{} is now {}", user.username, role.as_str());
        }
        UserCommand::Ban { name } => {
            let user = db
                .set_banned(&name, true, AppliedBy::Servers)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user named {name}"))?;
            println!("{} is banned; its sessions are ended", user.username);
        }
        UserCommand::Unban { name } => {
            let user = db
                .set_banned(&name, false, AppliedBy::Servers)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user named {name}"))?;
            println!("{} may log in again", user.username);
        }
        UserCommand::List => {
            for u in db.list_users().await? {
                println!("{}\t{}\t{}", u.username, u.role.as_str(), u.id);
            }
        }
    }
    Ok(())
}

/// Reads the password: prompted without echo on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    use std::io::IsTerminal;
    let line = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("password: ")?
    } else {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.lines().next().unwrap_or_default().to_owned()
    };
    Ok(line)
}

//! A database of its own for each test, on the machine's PostgreSQL
//! (`TEST_DATABASE_URL`, by default the local server with trust auth),
//! dropped when the test ends however it ends.

use order_service::Config;
use order_service::store::{PgStore, Storage};
use tokio_postgres::NoTls;

use crate::helpers::{TestApp, order_config, payment_config, spawn_app_on};

pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub struct TestDb {
    pub name: String,
    pub url: String,
}

/// A connection to the server's maintenance database (whose statistics
/// the test's own database does not share).
pub async fn admin() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&admin_url(), NoTls)
        .await
        .expect("the test PostgreSQL answers (TEST_DATABASE_URL)");
    tokio::spawn(connection);
    client
}

impl TestDb {
    pub async fn create() -> Self {
        let name = format!("orders_test_{}", uuid::Uuid::new_v4().simple());
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("test database created");
        let mut url: url_parts::Url = admin_url().parse().unwrap();
        url.database = name.clone();
        Self {
            url: url.to_string(),
            name,
        }
    }

    /// The server's `host:port`, for a [`crate::link::Link`] to it.
    pub fn server(&self) -> String {
        let authority = self.url.split("://").nth(1).unwrap_or_default();
        let host = authority.split(['/', '?']).next().unwrap_or_default();
        let host = host.rsplit('@').next().unwrap_or_default();
        match host.contains(':') {
            true => host.to_owned(),
            false => format!("{host}:5432"),
        }
    }

    /// A config of order-service on this database.
    pub fn config(&self, mut config: Config) -> Config {
        config.database.url = Some(self.url.clone());
        config
    }

    /// The store a replica would build from `config`.
    pub fn store(&self, config: &Config) -> PgStore {
        match Storage::open(self.config(config.clone()).storage()).unwrap() {
            Storage::Shared(pg) => pg,
            Storage::InProcess(_) => unreachable!("DATABASE_URL is set"),
        }
    }

    /// Both services, order-service on this database (the test keeps the
    /// database alive).
    pub fn spawn_app(&self) -> TestApp {
        let config = self.config(order_config());
        let storage = Storage::Shared(self.store(&config));
        spawn_app_on(config, payment_config(), storage)
    }

    /// Builds the schema now (an app does it in the background).
    pub async fn migrate(&self) {
        self.store(&order_config()).migrate().await.unwrap();
    }

    /// A direct connection to this database.
    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
    }

    /// One number from a query.
    pub async fn count(&self, sql: &str) -> i64 {
        self.client()
            .await
            .query_one(sql, &[])
            .await
            .unwrap()
            .get(0)
    }

    /// Transactions committed in this database so far, by backends that
    /// have reported (a backend reports at the latest when it exits).
    pub async fn commits(&self) -> i64 {
        self.statistic("SELECT xact_commit FROM pg_stat_database WHERE datname = $1")
            .await
    }

    /// Backends connected to this database now.
    pub async fn backends(&self) -> i64 {
        self.statistic("SELECT count(*) FROM pg_stat_activity WHERE datname = $1")
            .await
    }

    /// One number about this database, read from the maintenance database
    /// (so that reading it adds nothing to this one's statistics).
    async fn statistic(&self, sql: &str) -> i64 {
        admin()
            .await
            .query_one(sql, &[&self.name])
            .await
            .unwrap()
            .get(0)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block: a thread
        // of its own, with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                admin()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("test database {} not dropped: {e}", self.name);
        }
    }
}

/// Just enough URL handling to point the admin URL at another database.
mod url_parts {
    use std::fmt;
    use std::str::FromStr;

    pub struct Url {
        base: String,
        pub database: String,
        query: String,
    }

    impl FromStr for Url {
        type Err = String;
        fn from_str(url: &str) -> Result<Self, String> {
            let (before_query, query) = match url.split_once('?') {
                Some((b, q)) => (b, format!("?{q}")),
                None => (url, String::new()),
            };
            let scheme_end = before_query.find("://").ok_or("no scheme")? + 3;
            let path = before_query[scheme_end..]
                .find('/')
                .map(|i| i + scheme_end)
                .unwrap_or(before_query.len());
            Ok(Self {
                base: before_query[..path].to_owned(),
                database: before_query[path..].trim_start_matches('/').to_owned(),
                query,
            })
        }
    }

    impl fmt::Display for Url {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}/{}{}", self.base, self.database, self.query)
        }
    }
}

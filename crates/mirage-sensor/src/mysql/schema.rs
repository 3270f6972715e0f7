//! The fake schema the honeypot shows: the system databases, a small shop
//! database with believable rows, and `mysql.user` with password hashes
//! (none of them of a real password), so reconnaissance and dumps find
//! something worth taking. `information_schema` tables are derived from it.

use mirage_proto::mysql::{flags, types};

/// A column's SQL type, as it is reported in results and `DESCRIBE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `int(11)` / `int`.
    Int,
    /// `bigint(20) unsigned`.
    BigInt,
    /// `varchar(n)`.
    Varchar(u32),
    /// `char(n)`.
    Char(u32),
    /// `decimal(10,2)`.
    Decimal,
    /// `datetime`.
    Datetime,
    /// `text`.
    Text,
}

/// One column of a fake table.
#[derive(Debug, Clone)]
pub struct Col {
    /// Name.
    pub name: &'static str,
    /// Type.
    pub kind: Kind,
    /// Primary key.
    pub primary: bool,
    /// NULL allowed.
    pub nullable: bool,
    /// AUTO_INCREMENT.
    pub auto_increment: bool,
}

impl Col {
    const fn new(name: &'static str, kind: Kind) -> Col {
        Col {
            name,
            kind,
            primary: false,
            nullable: true,
            auto_increment: false,
        }
    }
    const fn id(name: &'static str) -> Col {
        Col {
            name,
            kind: Kind::Int,
            primary: true,
            nullable: false,
            auto_increment: true,
        }
    }

    /// The type as `DESCRIBE` writes it.
    pub fn sql_type(&self, mysql8: bool) -> String {
        match self.kind {
            Kind::Int if mysql8 => "int".into(),
            Kind::Int => "int(11)".into(),
            Kind::BigInt if mysql8 => "bigint unsigned".into(),
            Kind::BigInt => "bigint(20) unsigned".into(),
            Kind::Varchar(n) => format!("varchar({n})"),
            Kind::Char(n) => format!("char({n})"),
            Kind::Decimal => "decimal(10,2)".into(),
            Kind::Datetime => "datetime".into(),
            Kind::Text => "text".into(),
        }
    }

    /// The data type alone (`information_schema.COLUMNS.DATA_TYPE`).
    pub fn data_type(&self) -> &'static str {
        match self.kind {
            Kind::Int => "int",
            Kind::BigInt => "bigint",
            Kind::Varchar(_) => "varchar",
            Kind::Char(_) => "char",
            Kind::Decimal => "decimal",
            Kind::Datetime => "datetime",
            Kind::Text => "text",
        }
    }

    /// Wire type, display length (in characters for text) and flags.
    pub fn wire(&self) -> (u8, u32, u16, bool) {
        let mut f = 0u16;
        if !self.nullable {
            f |= flags::NOT_NULL;
        }
        if self.primary {
            // PART_KEY_FLAG: the column is part of some key.
            f |= flags::PRI_KEY | 0x4000;
        }
        if self.auto_increment {
            f |= flags::AUTO_INCREMENT;
        } else if !self.nullable {
            // NO_DEFAULT_VALUE_FLAG, as the server sets for NOT NULL columns
            // declared without a default.
            f |= 0x1000;
        }
        match self.kind {
            Kind::Int => (types::LONG, 11, f, false),
            Kind::BigInt => (types::LONGLONG, 20, f | flags::UNSIGNED, false),
            Kind::Varchar(n) => (types::VAR_STRING, n, f, true),
            Kind::Char(n) => (types::STRING, n, f, true),
            Kind::Decimal => (types::NEWDECIMAL, 12, f, false),
            Kind::Datetime => (types::DATETIME, 19, f | flags::BINARY, false),
            Kind::Text => (types::BLOB, 65535, f | flags::BLOB, true),
        }
    }
}

/// A fake table and its rows.
#[derive(Debug, Clone)]
pub struct Table {
    /// Name.
    pub name: &'static str,
    /// Columns.
    pub cols: Vec<Col>,
    /// Rows (text values, `None` for NULL).
    pub rows: Vec<Vec<Option<String>>>,
}

/// A database.
#[derive(Debug, Clone)]
pub struct Database {
    /// Name.
    pub name: &'static str,
    /// Its tables (the system databases list none except `mysql.user`).
    pub tables: Vec<Table>,
}

/// The whole fake catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Databases in `SHOW DATABASES` order.
    pub databases: Vec<Database>,
}

fn row(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|s| s.map(str::to_owned)).collect()
}

impl Catalog {
    /// The catalog for a MySQL (`mariadb` false) or MariaDB server.
    pub fn new(mariadb: bool) -> Catalog {
        use Kind::*;
        let users = Table {
            name: "users",
            cols: vec![
                Col::id("id"),
                Col::new("username", Varchar(64)),
                Col::new("email", Varchar(128)),
                Col::new("password_hash", Char(60)),
                Col::new("role", Varchar(16)),
                Col::new("created_at", Datetime),
            ],
            rows: vec![
                row(&[
                    Some("1"),
                    Some("admin"),
                    Some("admin@shop.example"),
                    Some("$2y$10$QxW0v1m0bq7o6kY3o1xg8uJ6m9n8s7oXkq1a2l3m4n5o6p7q8r9sO"),
                    Some("admin"),
                    Some("2023-03-14 09:12:44"),
                ]),
                row(&[
                    Some("2"),
                    Some("jwilson"),
                    Some("j.wilson@shop.example"),
                    Some("$2y$10$h7Gq2T0m3sK9vY1c8pX4Ue0rZ6bN5aQ2wE3rT4yU5iO6pA7sD8fGh"),
                    Some("editor"),
                    Some("2023-05-02 16:40:03"),
                ]),
                row(&[
                    Some("3"),
                    Some("mlopez"),
                    Some("maria.lopez@shop.example"),
                    Some("$2y$10$Lk9Jh8Gf7Ds6Aa5Ss4Dd3Ff2Gg1Hh0Jj9Kk8Ll7Zz6Xx5Cc4Vv3Bb"),
                    Some("customer"),
                    Some("2024-01-19 11:05:27"),
                ]),
            ],
        };
        let orders = Table {
            name: "orders",
            cols: vec![
                Col::id("id"),
                Col::new("user_id", Int),
                Col::new("total", Decimal),
                Col::new("status", Varchar(16)),
                Col::new("created_at", Datetime),
            ],
            rows: vec![
                row(&[
                    Some("1001"),
                    Some("3"),
                    Some("59.90"),
                    Some("shipped"),
                    Some("2024-02-01 10:22:13"),
                ]),
                row(&[
                    Some("1002"),
                    Some("3"),
                    Some("12.50"),
                    Some("paid"),
                    Some("2024-02-03 18:01:55"),
                ]),
            ],
        };
        let payments = Table {
            name: "payments",
            cols: vec![
                Col::id("id"),
                Col::new("order_id", Int),
                Col::new("card_brand", Varchar(16)),
                Col::new("card_last4", Char(4)),
                Col::new("amount", Decimal),
            ],
            rows: vec![
                row(&[
                    Some("1"),
                    Some("1001"),
                    Some("VISA"),
                    Some("4242"),
                    Some("59.90"),
                ]),
                row(&[
                    Some("2"),
                    Some("1002"),
                    Some("MASTERCARD"),
                    Some("5100"),
                    Some("12.50"),
                ]),
            ],
        };
        let mut system_users = vec![
            row(&[
                Some("localhost"),
                Some("root"),
                Some("*6BB4837EB74329105EE4568DDA7DC67ED2CA2AD9"),
                Some("mysql_native_password"),
            ]),
            row(&[
                Some("%"),
                Some("shop"),
                Some("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"),
                Some("mysql_native_password"),
            ]),
            row(&[
                Some("%"),
                Some("backup"),
                Some("*A4B6157319038724E3560894F7F932C8886EBFCF"),
                Some("mysql_native_password"),
            ]),
        ];
        if mariadb {
            system_users.push(row(&[
                Some("localhost"),
                Some("mariadb.sys"),
                Some(""),
                Some("mysql_native_password"),
            ]));
        } else {
            for u in ["mysql.infoschema", "mysql.session", "mysql.sys"] {
                system_users.push(row(&[
                    Some("localhost"),
                    Some(u),
                    Some("$A$005$THISISACOMBINATIONOFINVALIDSALTANDPASSWORDTHATMUSTNEVERBRBEUSED"),
                    Some("caching_sha2_password"),
                ]));
            }
        }
        let user = Table {
            name: "user",
            cols: vec![
                Col {
                    primary: true,
                    nullable: false,
                    ..Col::new("Host", Char(255))
                },
                Col {
                    primary: true,
                    nullable: false,
                    ..Col::new("User", Char(32))
                },
                Col::new("authentication_string", Text),
                Col::new("plugin", Char(64)),
            ],
            rows: system_users,
        };
        Catalog {
            databases: vec![
                Database {
                    name: "information_schema",
                    tables: Vec::new(),
                },
                Database {
                    name: "mysql",
                    tables: vec![user],
                },
                Database {
                    name: "performance_schema",
                    tables: Vec::new(),
                },
                Database {
                    name: "shop",
                    tables: vec![users, orders, payments],
                },
                Database {
                    name: "sys",
                    tables: Vec::new(),
                },
            ],
        }
    }

    /// The database named `name` (case-sensitive, as on Linux).
    pub fn database(&self, name: &str) -> Option<&Database> {
        self.databases.iter().find(|d| d.name == name)
    }

    /// The table `db.name`.
    pub fn table(&self, db: &str, name: &str) -> Option<&Table> {
        self.database(db)?.tables.iter().find(|t| t.name == name)
    }

    /// `information_schema` views: SCHEMATA, TABLES and COLUMNS, built from
    /// the catalog (names compared case-insensitively, as MySQL does there).
    pub fn information_schema(&self, name: &str, mysql8: bool) -> Option<Table> {
        use Kind::*;
        let name = name.to_ascii_uppercase();
        match name.as_str() {
            "SCHEMATA" => Some(Table {
                name: "SCHEMATA",
                cols: vec![
                    Col::new("CATALOG_NAME", Varchar(64)),
                    Col::new("SCHEMA_NAME", Varchar(64)),
                    Col::new("DEFAULT_CHARACTER_SET_NAME", Varchar(64)),
                    Col::new("DEFAULT_COLLATION_NAME", Varchar(64)),
                ],
                rows: self
                    .databases
                    .iter()
                    .map(|d| {
                        row(&[
                            Some("def"),
                            Some(d.name),
                            Some("utf8mb4"),
                            Some(if mysql8 {
                                "utf8mb4_0900_ai_ci"
                            } else {
                                "utf8mb4_general_ci"
                            }),
                        ])
                    })
                    .collect(),
            }),
            "TABLES" => Some(Table {
                name: "TABLES",
                cols: vec![
                    Col::new("TABLE_CATALOG", Varchar(64)),
                    Col::new("TABLE_SCHEMA", Varchar(64)),
                    Col::new("TABLE_NAME", Varchar(64)),
                    Col::new("TABLE_TYPE", Varchar(64)),
                    Col::new("ENGINE", Varchar(64)),
                    Col::new("TABLE_ROWS", BigInt),
                ],
                rows: self
                    .databases
                    .iter()
                    .flat_map(|d| {
                        d.tables.iter().map(move |t| {
                            let n = t.rows.len().to_string();
                            row(&[
                                Some("def"),
                                Some(d.name),
                                Some(t.name),
                                Some("BASE TABLE"),
                                Some(if d.name == "mysql" && !mysql8 {
                                    "Aria"
                                } else {
                                    "InnoDB"
                                }),
                                Some(&n),
                            ])
                        })
                    })
                    .collect(),
            }),
            "COLUMNS" => Some(Table {
                name: "COLUMNS",
                cols: vec![
                    Col::new("TABLE_CATALOG", Varchar(64)),
                    Col::new("TABLE_SCHEMA", Varchar(64)),
                    Col::new("TABLE_NAME", Varchar(64)),
                    Col::new("COLUMN_NAME", Varchar(64)),
                    Col::new("ORDINAL_POSITION", BigInt),
                    Col::new("DATA_TYPE", Varchar(64)),
                    Col::new("COLUMN_TYPE", Text),
                    Col::new("COLUMN_KEY", Varchar(3)),
                ],
                rows: self
                    .databases
                    .iter()
                    .flat_map(|d| {
                        d.tables.iter().flat_map(move |t| {
                            t.cols.iter().enumerate().map(move |(i, c)| {
                                let pos = (i + 1).to_string();
                                let ty = c.sql_type(mysql8);
                                row(&[
                                    Some("def"),
                                    Some(d.name),
                                    Some(t.name),
                                    Some(c.name),
                                    Some(&pos),
                                    Some(c.data_type()),
                                    Some(&ty),
                                    Some(if c.primary { "PRI" } else { "" }),
                                ])
                            })
                        })
                    })
                    .collect(),
            }),
            _ => None,
        }
    }
}

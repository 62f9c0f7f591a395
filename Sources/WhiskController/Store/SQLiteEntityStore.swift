import Foundation
import GRDB
import Synchronization
import WhiskMessages

/// The embedded store: one SQLite file through GRDB (or memory, for tests).
///
/// Documents are kept as JSON next to the columns that queries filter on. GRDB runs its work on
/// its own serial queue, so awaiting it does not block Swift's cooperative pool.
public final class SQLiteEntityStore: EntityStore {
    /// Internal for tests that hold its queue.
    let database: DatabaseQueue
    /// Actions as last read, by `namespace/name`: every invoke reads its action, and decoding the
    /// document (code and all) cost more than the rest of the read. Filled and cleared only inside
    /// the database's closures, which run one at a time, so a fill never outlives the write that
    /// changed the action.
    private let actionCache = Mutex<[String: ActionDocument]>([:])
    /// Entries of each in-memory cache (actions, credentials); a full one starts again empty.
    private static let cacheLimit = 1024
    /// Namespaces by uuid, as read: every request authenticates, and the read was a hop to the
    /// database's queue and back on the path of every invoke. A namespace's credentials never
    /// change once it is created (nothing updates or deletes one), so nothing clears it.
    private let identityCache = Mutex<[String: NamespaceIdentity]>([:])

    /// - Parameter path: the database file; nil keeps everything in memory.
    public init(path: String?) throws {
        if let path {
            try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            var configuration = Configuration()
            // Every accepted activation is written twice (pending, then its record): WAL with
            // NORMAL sync keeps those writes off fsync while staying safe across process crashes.
            configuration.prepareDatabase { db in
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
            }
            database = try DatabaseQueue(path: path, configuration: configuration)
            try database.writeWithoutTransaction { db in _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL") }
        } else {
            database = try DatabaseQueue()
        }
        try Self.migrator.migrate(database)
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.create(table: "namespace") { t in
                t.primaryKey("name", .text)
                t.column("uuid", .text).notNull().unique()
                t.column("key", .text).notNull()
            }
            try db.create(table: "action") { t in
                t.column("namespace", .text).notNull()
                t.column("name", .text).notNull()
                t.column("document", .blob).notNull()
                t.primaryKey(["namespace", "name"])
            }
            try db.create(table: "activation") { t in
                t.primaryKey("id", .text)
                t.column("namespace", .text).notNull()
                t.column("name", .text).notNull()
                t.column("start", .integer).notNull()
                t.column("record", .blob).notNull()
            }
            try db.create(index: "activation_by_namespace_start", on: "activation", columns: ["namespace", "start"])
        }
        migrator.registerMigration("v2: pending activations") { db in
            try db.alter(table: "activation") { t in
                t.add(column: "provisional", .boolean).notNull().defaults(to: false)
            }
            try db.create(table: "pending_activation") { t in
                t.primaryKey("id", .text)
                t.column("controller", .text).notNull()
                t.column("deadline", .integer).notNull()
                t.column("document", .blob).notNull()
            }
            try db.create(index: "pending_activation_by_deadline", on: "pending_activation", columns: ["controller", "deadline"])
        }
        migrator.registerMigration("v3: packages") { db in
            try db.create(table: "package") { t in
                t.column("namespace", .text).notNull()
                t.column("name", .text).notNull()
                t.column("publish", .boolean).notNull()
                t.column("document", .blob).notNull()
                t.primaryKey(["namespace", "name"])
            }
        }
        migrator.registerMigration("v4: triggers and rules") { db in
            try db.create(table: "trigger") { t in
                t.column("namespace", .text).notNull()
                t.column("name", .text).notNull()
                t.column("document", .blob).notNull()
                t.primaryKey(["namespace", "name"])
            }
            try db.create(table: "rule") { t in
                t.column("namespace", .text).notNull()
                t.column("name", .text).notNull()
                t.column("trigger", .text).notNull()
                t.column("document", .blob).notNull()
                t.primaryKey(["namespace", "name"])
            }
            try db.create(index: "rule_by_trigger", on: "rule", columns: ["trigger"])
        }
        return migrator
    }

    static func encode<T: Encodable>(_ value: T) throws -> Data { try WhiskMessageCoding.encode(value) }
    static func decode<T: Decodable>(_ type: T.Type, _ data: Data) throws -> T {
        try WhiskMessageCoding.decode(type, from: data, maxBytes: .max)
    }

    // MARK: Namespaces

    public func identity(uuid: String, key: String) async throws -> NamespaceIdentity? {
        let known: NamespaceIdentity?
        if let cached = identityCache.withLock({ $0[uuid] }) {
            known = cached
        } else {
            known = try await database.read { db in
                let statement = try db.cachedStatement(sql: "SELECT name, uuid, key FROM namespace WHERE uuid = ?")
                guard let row = try Row.fetchOne(statement, arguments: [uuid]) else { return nil }
                let identity = NamespaceIdentity(name: row["name"], uuid: row["uuid"], key: row["key"])
                identityCache.withLock { cache in
                    if cache.count >= Self.cacheLimit { cache.removeAll() }
                    cache[uuid] = identity
                }
                return identity
            }
        }
        // Compare in constant time: the key is a secret.
        guard let known, known.key.utf8.count == key.utf8.count,
              zip(known.key.utf8, key.utf8).reduce(0, { $0 | ($1.0 ^ $1.1) }) == 0 else { return nil }
        return known
    }

    public func namespace(named name: String) async throws -> NamespaceIdentity? {
        try await database.read { db in
            try Row.fetchOne(db, sql: "SELECT name, uuid, key FROM namespace WHERE name = ?", arguments: [name])
                .map { NamespaceIdentity(name: $0["name"], uuid: $0["uuid"], key: $0["key"]) }
        }
    }

    public func createNamespace(_ name: String, identity: NamespaceIdentity?) async throws -> NamespaceIdentity {
        guard EntityName(name) != nil, !name.contains(" ") else {
            throw StoreError(.invalid, "'\(name)' is not a valid namespace name")
        }
        let created = identity ?? NamespaceIdentity(name: name, uuid: UUID().uuidString.lowercased(), key: Self.randomKey())
        return try await database.write { db in
            if try Row.fetchOne(db, sql: "SELECT name FROM namespace WHERE name = ?", arguments: [name]) != nil {
                throw StoreError(.conflict, "namespace '\(name)' already exists")
            }
            try db.execute(sql: "INSERT INTO namespace (name, uuid, key) VALUES (?, ?, ?)", arguments: [name, created.uuid, created.key])
            return NamespaceIdentity(name: name, uuid: created.uuid, key: created.key)
        }
    }

    public func namespaces() async throws -> [String] {
        try await database.read { db in try String.fetchAll(db, sql: "SELECT name FROM namespace ORDER BY name") }
    }

    static func randomKey() -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        var generator = SystemRandomNumberGenerator()
        return String((0..<64).map { _ in alphabet.randomElement(using: &generator)! })
    }

    // MARK: Actions

    public func putAction(_ action: ActionDocument, overwrite: Bool) async throws -> ActionDocument {
        try await database.write { db in
            var stored = action
            if let existingData = try Data.fetchOne(db, sql: "SELECT document FROM action WHERE namespace = ? AND name = ?", arguments: [action.namespace, action.name]) {
                guard overwrite else {
                    throw StoreError(.conflict, "resource already exists")
                }
                let existing = try Self.decode(ActionDocument.self, existingData)
                stored.version = existing.version.nextPatch()
                stored.rev = Self.nextRevision(after: existing.rev)
            } else {
                stored.rev = Self.nextRevision(after: nil)
            }
            try db.execute(sql: "INSERT OR REPLACE INTO action (namespace, name, document) VALUES (?, ?, ?)",
                           arguments: [stored.namespace, stored.name, try Self.encode(stored)])
            actionCache.withLock { _ = $0.removeValue(forKey: "\(action.namespace)/\(action.name)") }
            return stored
        }
    }

    public func action(namespace: String, name: String) async throws -> ActionDocument? {
        let key = "\(namespace)/\(name)"
        if let cached = actionCache.withLock({ $0[key] }) { return cached }
        return try await database.read { db in
            guard let action = try Data.fetchOne(db, sql: "SELECT document FROM action WHERE namespace = ? AND name = ?", arguments: [namespace, name])
                .map({ try Self.decode(ActionDocument.self, $0) }) else { return nil }
            actionCache.withLock { cache in
                if cache.count >= Self.cacheLimit { cache.removeAll() }
                cache[key] = action
            }
            return action
        }
    }

    public func actions(namespace: String, limit: Int, skip: Int) async throws -> [ActionDocument] {
        try await database.read { db in
            // The namespace's own actions and those of its packages (`ns/pkg`), as upstream lists them.
            // (`ns/` ≤ x < `ns0` is every string that starts with `ns/`: "0" follows "/".)
            try Data.fetchAll(db, sql: "SELECT document FROM action WHERE namespace = ? OR (namespace >= ? AND namespace < ?) ORDER BY namespace, name LIMIT ? OFFSET ?",
                              arguments: [namespace, namespace + "/", namespace + "0", limit, skip])
                .map { try Self.decode(ActionDocument.self, $0) }
        }
    }

    public func deleteAction(namespace: String, name: String) async throws -> ActionDocument? {
        try await database.write { db in
            guard let data = try Data.fetchOne(db, sql: "SELECT document FROM action WHERE namespace = ? AND name = ?", arguments: [namespace, name]) else { return nil }
            try db.execute(sql: "DELETE FROM action WHERE namespace = ? AND name = ?", arguments: [namespace, name])
            actionCache.withLock { _ = $0.removeValue(forKey: "\(namespace)/\(name)") }
            return try Self.decode(ActionDocument.self, data)
        }
    }

    // MARK: Packages

    public func putPackage(_ package: PackageDocument, overwrite: Bool) async throws -> PackageDocument {
        try await database.write { db in
            var stored = package
            if let existingData = try Data.fetchOne(db, sql: "SELECT document FROM package WHERE namespace = ? AND name = ?", arguments: [package.namespace, package.name]) {
                guard overwrite else { throw StoreError(.conflict, "resource already exists") }
                stored.rev = Self.nextRevision(after: try Self.decode(PackageDocument.self, existingData).rev)
            } else {
                stored.rev = Self.nextRevision(after: nil)
            }
            // The action cache is untouched: it holds actions as stored, and their package's
            // parameters are merged into a copy on each read (Controller.resolveAction).
            try db.execute(sql: "INSERT OR REPLACE INTO package (namespace, name, publish, document) VALUES (?, ?, ?, ?)",
                           arguments: [stored.namespace, stored.name, stored.publish, try Self.encode(stored)])
            return stored
        }
    }

    public func package(namespace: String, name: String) async throws -> PackageDocument? {
        try await database.read { db in
            try Data.fetchOne(db, sql: "SELECT document FROM package WHERE namespace = ? AND name = ?", arguments: [namespace, name])
                .map { try Self.decode(PackageDocument.self, $0) }
        }
    }

    public func packages(namespace: String, limit: Int, skip: Int, publicOnly: Bool) async throws -> [PackageDocument] {
        try await database.read { db in
            try Data.fetchAll(db, sql: "SELECT document FROM package WHERE namespace = ?\(publicOnly ? " AND publish" : "") ORDER BY name LIMIT ? OFFSET ?",
                              arguments: [namespace, limit, skip])
                .map { try Self.decode(PackageDocument.self, $0) }
        }
    }

    public func deletePackage(namespace: String, name: String, withActions: Bool) async throws -> PackageDocument? {
        try await database.write { db in
            guard let data = try Data.fetchOne(db, sql: "SELECT document FROM package WHERE namespace = ? AND name = ?", arguments: [namespace, name]) else { return nil }
            let path = "\(namespace)/\(name)"
            let contained = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM action WHERE namespace = ?", arguments: [path]) ?? 0
            if contained > 0 {
                guard withActions else {
                    throw StoreError(.conflict, "Package not empty (contains \(contained) \(contained == 1 ? "entity" : "entities")). Set force param or delete package contents.")
                }
                try db.execute(sql: "DELETE FROM action WHERE namespace = ?", arguments: [path])
            }
            try db.execute(sql: "DELETE FROM package WHERE namespace = ? AND name = ?", arguments: [namespace, name])
            actionCache.withLock { $0.removeAll() }
            return try Self.decode(PackageDocument.self, data)
        }
    }

    // MARK: Triggers and rules

    /// The next revision after `existing`'s (or the first): `<generation>-<random>`, for every kind of entity.
    static func nextRevision(after existing: String?) -> String {
        let generation = (existing.flatMap { Int($0.split(separator: "-").first ?? "0") } ?? 0) + 1
        return "\(generation)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    public func putTrigger(_ trigger: TriggerDocument, overwrite: Bool) async throws -> TriggerDocument {
        try await database.write { db in
            var stored = trigger
            let existing = try Data.fetchOne(db, sql: "SELECT document FROM trigger WHERE namespace = ? AND name = ?", arguments: [trigger.namespace, trigger.name])
                .map { try Self.decode(TriggerDocument.self, $0) }
            if existing != nil && !overwrite { throw StoreError(.conflict, "resource already exists") }
            stored.rev = Self.nextRevision(after: existing?.rev)
            try db.execute(sql: "INSERT OR REPLACE INTO trigger (namespace, name, document) VALUES (?, ?, ?)",
                           arguments: [stored.namespace, stored.name, try Self.encode(stored)])
            return stored
        }
    }

    public func trigger(namespace: String, name: String) async throws -> TriggerDocument? {
        try await database.read { db in
            try Data.fetchOne(db, sql: "SELECT document FROM trigger WHERE namespace = ? AND name = ?", arguments: [namespace, name])
                .map { try Self.decode(TriggerDocument.self, $0) }
        }
    }

    public func triggers(namespace: String, limit: Int, skip: Int) async throws -> [TriggerDocument] {
        try await database.read { db in
            try Data.fetchAll(db, sql: "SELECT document FROM trigger WHERE namespace = ? ORDER BY name LIMIT ? OFFSET ?", arguments: [namespace, limit, skip])
                .map { try Self.decode(TriggerDocument.self, $0) }
        }
    }

    public func deleteTrigger(namespace: String, name: String) async throws -> TriggerDocument? {
        try await database.write { db in
            guard let data = try Data.fetchOne(db, sql: "SELECT document FROM trigger WHERE namespace = ? AND name = ?", arguments: [namespace, name]) else { return nil }
            try db.execute(sql: "DELETE FROM trigger WHERE namespace = ? AND name = ?", arguments: [namespace, name])
            // Its rules stay but go inactive, as upstream's do (their status lived in the trigger):
            // a trigger made again under this name does not fire them until they are enabled.
            let trigger = "\(namespace)/\(name)"
            for row in try Row.fetchAll(db, sql: "SELECT namespace, name, document FROM rule WHERE trigger = ?", arguments: [trigger]) {
                var rule = try Self.decode(RuleDocument.self, row["document"])
                guard rule.status == .active else { continue }
                rule.status = .inactive
                try db.execute(sql: "UPDATE rule SET document = ? WHERE namespace = ? AND name = ?",
                               arguments: [try Self.encode(rule), row["namespace"] as String, row["name"] as String])
            }
            return try Self.decode(TriggerDocument.self, data)
        }
    }

    public func putRule(_ rule: RuleDocument, overwrite: Bool) async throws -> RuleDocument {
        try await database.write { db in
            var stored = rule
            let existing = try Data.fetchOne(db, sql: "SELECT document FROM rule WHERE namespace = ? AND name = ?", arguments: [rule.namespace, rule.name])
                .map { try Self.decode(RuleDocument.self, $0) }
            if existing != nil && !overwrite { throw StoreError(.conflict, "resource already exists") }
            stored.rev = Self.nextRevision(after: existing?.rev)
            try db.execute(sql: "INSERT OR REPLACE INTO rule (namespace, name, trigger, document) VALUES (?, ?, ?, ?)",
                           arguments: [stored.namespace, stored.name, stored.trigger.description, try Self.encode(stored)])
            return stored
        }
    }

    public func rule(namespace: String, name: String) async throws -> RuleDocument? {
        try await database.read { db in
            try Data.fetchOne(db, sql: "SELECT document FROM rule WHERE namespace = ? AND name = ?", arguments: [namespace, name])
                .map { try Self.decode(RuleDocument.self, $0) }
        }
    }

    public func rules(namespace: String, limit: Int, skip: Int) async throws -> [RuleDocument] {
        try await database.read { db in
            try Data.fetchAll(db, sql: "SELECT document FROM rule WHERE namespace = ? ORDER BY name LIMIT ? OFFSET ?", arguments: [namespace, limit, skip])
                .map { try Self.decode(RuleDocument.self, $0) }
        }
    }

    public func rules(trigger: String) async throws -> [RuleDocument] {
        try await database.read { db in
            try Data.fetchAll(db, sql: "SELECT document FROM rule WHERE trigger = ? ORDER BY namespace, name", arguments: [trigger])
                .map { try Self.decode(RuleDocument.self, $0) }
        }
    }

    public func deleteRule(namespace: String, name: String) async throws -> RuleDocument? {
        try await database.write { db in
            guard let data = try Data.fetchOne(db, sql: "SELECT document FROM rule WHERE namespace = ? AND name = ?", arguments: [namespace, name]) else { return nil }
            try db.execute(sql: "DELETE FROM rule WHERE namespace = ? AND name = ?", arguments: [namespace, name])
            return try Self.decode(RuleDocument.self, data)
        }
    }

    // MARK: Activations

    /// Keeps the first record of an activation: an activation that an invoker ran again after a
    /// crash (at-least-once delivery) never replaces the record its first run left. Only a
    /// provisional record (the controller gave up waiting) is replaced, by a real one.
    public func storeActivations(_ records: [(activation: WhiskActivation, provisional: Bool)]) async throws {
        try await storeActivations(records, whenOrdered: {})
    }

    /// The write is queued on the database's one serial queue, which runs reads and writes in the
    /// order they were queued: `whenOrdered` runs once it is queued, so a read queued after it
    /// (by a caller answered then) sees the records. This rests on `DatabaseQueue`: a
    /// `DatabasePool` reads beside the writer and would not see a write still queued.
    public func storeActivations(_ records: [(activation: WhiskActivation, provisional: Bool)], whenOrdered: @escaping @Sendable () -> Void) async throws {
        let encoded = try records.map { (id: $0.activation.activationId.rawValue, namespace: $0.activation.namespace.rawValue, name: $0.activation.name.rawValue,
                                         start: $0.activation.start, document: try Self.encode($0.activation), provisional: $0.provisional) }
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, Error>) in
            database.asyncWrite({ db in
                // Once per activation: prepared once per connection (SQLite's parser was half of
                // the controller's SQLite samples).
                let insert = try db.cachedStatement(sql: """
                    INSERT INTO activation (id, namespace, name, start, record, provisional) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(id) DO UPDATE SET namespace = excluded.namespace, name = excluded.name, start = excluded.start,
                        record = excluded.record, provisional = excluded.provisional
                    WHERE activation.provisional AND NOT excluded.provisional
                    """)
                let forget = try db.cachedStatement(sql: "DELETE FROM pending_activation WHERE id = ?")
                for record in encoded {
                    try insert.execute(arguments: [record.id, record.namespace, record.name, record.start, record.document, record.provisional])
                    try forget.execute(arguments: [record.id])
                }
            }, completion: { _, result in continuation.resume(with: result) })
            whenOrdered()
        }
    }

    public func addPending(_ pending: PendingActivation) async throws {
        let document = try Self.encode(pending)
        try await database.write { db in
            // The record may have been stored first (the write races the publication).
            try db.cachedStatement(sql: """
                INSERT OR REPLACE INTO pending_activation (id, controller, deadline, document)
                SELECT ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM activation WHERE id = ?)
                """).execute(arguments: [pending.activationId.rawValue, pending.controller, pending.deadline, document, pending.activationId.rawValue])
        }
    }

    public func forgetPending(_ activationId: ActivationId) async throws {
        try await database.write { db in
            try db.cachedStatement(sql: "DELETE FROM pending_activation WHERE id = ?").execute(arguments: [activationId.rawValue])
        }
    }

    public func pendingActivations(controller: String, dueBy: Int64) async throws -> [PendingActivation] {
        try await database.read { db in
            try Data.fetchAll(db, sql: "SELECT document FROM pending_activation WHERE controller = ? AND deadline <= ? ORDER BY deadline",
                              arguments: [controller, dueBy])
                .map { try Self.decode(PendingActivation.self, $0) }
        }
    }

    public func activation(namespace: String, id: ActivationId) async throws -> WhiskActivation? {
        try await database.read { db in
            try Data.fetchOne(db, sql: "SELECT record FROM activation WHERE id = ? AND namespace = ?", arguments: [id.rawValue, namespace])
                .map { try Self.decode(WhiskActivation.self, $0) }
        }
    }

    public func activations(_ query: ActivationQuery) async throws -> [WhiskActivation] {
        try await database.read { db in
            var sql = "SELECT record FROM activation WHERE namespace = ?"
            var arguments: StatementArguments = [query.namespace]
            if let name = query.name {
                sql += " AND name = ?"
                _ = arguments.append(contentsOf: [name])
            }
            if let since = query.since {
                sql += " AND start >= ?"
                _ = arguments.append(contentsOf: [since])
            }
            if let upto = query.upto {
                sql += " AND start <= ?"
                _ = arguments.append(contentsOf: [upto])
            }
            sql += " ORDER BY start DESC LIMIT ? OFFSET ?"
            _ = arguments.append(contentsOf: [query.limit, query.skip])
            return try Data.fetchAll(db, sql: sql, arguments: arguments).map { try Self.decode(WhiskActivation.self, $0) }
        }
    }
}

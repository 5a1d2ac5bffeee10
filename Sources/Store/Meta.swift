extension FeatureStore {
    /// A value of the store's `meta` key/value table (nil when unset).
    public func metaValue(_ key: String) throws -> String? {
        try database.scalarText("SELECT value FROM meta WHERE key = ?", [.text(key)])
    }

    /// Sets a value of the `meta` table.
    public func setMetaValue(_ key: String, _ value: String) throws {
        try database.run("INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                         [.text(key), .text(value)])
    }
}

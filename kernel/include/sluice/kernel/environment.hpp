// Environment variables and secrets of a node, kept in storage so every node sharing it sees
// them, and the `$ENV(name)` / `$SECRET(name)` substitution in configuration (reference §3.1).
//
// `$ENV(name)` is resolved when a configuration is validated: the effective config shows the
// value, and an unknown name is a located config error. `$SECRET(name)` is resolved only when a
// component instance is created, so secret values never appear in any API answer or log.
#pragma once

#include <sluice/entity.hpp>
#include <sluice/kernel/security.hpp>

#include <memory>

#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace sluice::kernel {

class DatasetStore;

// Secret values are kept AES-256-GCM encrypted in storage (`cipher`, keyed from
// <data-dir>/secrets.key) and in plain text only in this process's memory; each value is
// registered with security::Redactor so it is masked in logs, errors and execution logs.
// The stored secrets cannot be opened with this node's secrets.key (another node sharing the
// storage rotated it, or the key files differ).
// Answered 409 Conflict by the API, having written nothing.
struct SecretsKeyMismatch : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Environment {
public:
    explicit Environment(DatasetStore& store, std::shared_ptr<const security::SecretCipher> cipher = nullptr);
    // Re-encrypts every stored secret with `next` (key rotation). Throws SecretsKeyMismatch,
    // having written nothing, when this node's current key cannot open what is stored.
    void set_cipher(std::shared_ptr<const security::SecretCipher> next);

    // Called with the variables a change would leave, before anything is written; throwing
    // (ConfigError: the configuration would not build with them) refuses the change. It runs
    // under this object's lock, so it must not call back into it.
    using VariablesCheck = std::function<void(const Json& variables)>;

    JsonDocument variables() const;  // {name: value}
    // Replaces all variables (PUT /api/env) or merges into them (POST/PATCH), starting from what
    // is stored now (another node may have changed it).
    void set_variables(const Json& object, bool replace, const VariablesCheck& check = {});
    bool erase_variable(const std::string& name, const VariablesCheck& check = {});

    // Re-reads what another node sharing the storage may have changed. Returns true when the
    // variables changed. Secrets this node's key cannot open (another node rotated it) are left
    // as they were, with a warning in the log (once per distinct cause). Storage is read without
    // holding the lock, so secret lookups by running pipes do not wait on it.
    bool reload();

    std::vector<std::string> secret_names() const;
    std::optional<std::string> secret(const std::string& name) const;
    void set_secrets(const Json& object, bool replace);  // values must be strings
    bool erase_secret(const std::string& name);

private:
    void load();
    JsonDocument read_variables() const;
    // The stored secrets, decrypted with `cipher` (may be null: none configured); throws
    // SecretsKeyMismatch naming the first one it cannot open. `plain_found`: some were stored
    // before encryption existed.
    JsonDocument read_secrets(const security::SecretCipher* cipher, bool& plain_found) const;
    void save_secrets_locked(const JsonDocument& plain);
    DatasetStore& store_;
    std::shared_ptr<const security::SecretCipher> cipher_;
    mutable std::mutex mutex_;
    JsonDocument variables_;
    JsonDocument secrets_;
    // Bumped by every write of this node under mutex_: reload() drops what it read when a write
    // happened meanwhile (it would be older than what the write left).
    uint64_t generation_ = 0;
    std::string reload_error_;  // the last cause reload() logged, so it is logged once
};

// One unresolved `$ENV(name)`: where (JSON pointer below the value given) and which name.
struct UnresolvedReference {
    std::string pointer;
    std::string name;
};

// Replaces `$ENV(name)` in every string inside `value`. A string that is exactly `$ENV(name)`
// takes the variable's JSON value (any type); inside a longer string the value is spliced in as
// text. Unknown names are collected in `unresolved` and left as they are.
void substitute_env(Json& value, JsonAllocator& allocator, const Json& variables, const std::string& pointer,
                    std::vector<UnresolvedReference>& unresolved);

// Replaces `$SECRET(name)` inside the strings of a JSON text. Throws std::runtime_error naming
// the first unknown secret (never a value).
std::string substitute_secrets(const std::string& json_text,
                               const std::function<std::optional<std::string>(const std::string&)>& secret);

}  // namespace sluice::kernel

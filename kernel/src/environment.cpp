#include <sluice/kernel/dataset_store.hpp>
#include <sluice/kernel/environment.hpp>

#include <Poco/Logger.h>

#include <optional>
#include <stdexcept>

namespace sluice::kernel {

namespace {

constexpr const char* kEnvKey = "node:env";
constexpr const char* kSecretsKey = "node:secrets";

std::string escape_pointer_token(std::string_view token) {
    std::string out;
    for (char c : token) {
        if (c == '~') out += "~0";
        else if (c == '/') out += "~1";
        else out += c;
    }
    return out;
}

// Finds the next `$<KIND>(name)` at or after `from`; npos when none.
size_t find_reference(std::string_view text, std::string_view kind, size_t from, std::string_view& name,
                      size_t& end) {
    const std::string marker = "$" + std::string(kind) + "(";
    for (size_t at = text.find(marker, from); at != std::string_view::npos; at = text.find(marker, at + 1)) {
        size_t close = text.find(')', at + marker.size());
        if (close == std::string_view::npos) return std::string_view::npos;
        name = text.substr(at + marker.size(), close - at - marker.size());
        end = close + 1;
        return at;
    }
    return std::string_view::npos;
}

std::string value_as_text(const Json& value) {
    return value.IsString() ? std::string(as_view(value)) : to_json(value);
}

}  // namespace

Environment::Environment(DatasetStore& store, std::shared_ptr<const security::SecretCipher> cipher)
    : store_(store), cipher_(std::move(cipher)) {
    load();
}

void Environment::load() {
    std::lock_guard<std::mutex> lock(mutex_);
    variables_ = read_variables();
    bool plain_found = false;
    secrets_ = read_secrets(cipher_.get(), plain_found);
    if (plain_found && cipher_) save_secrets_locked(secrets_);
}

JsonDocument Environment::read_variables() const {
    JsonDocument variables = store_.state_get(kEnvKey);
    if (!variables.IsObject()) variables.SetObject();
    return variables;
}

JsonDocument Environment::read_secrets(const security::SecretCipher* cipher, bool& plain_found) const {
    JsonDocument stored = store_.state_get(kSecretsKey);
    JsonDocument secrets(rapidjson::kObjectType);
    plain_found = false;
    if (!stored.IsObject()) return secrets;
    auto& a = secrets.GetAllocator();
    for (auto it = stored.MemberBegin(); it != stored.MemberEnd(); ++it) {
        if (!it->value.IsString()) continue;
        std::string value(as_view(it->value));
        if (security::SecretCipher::is_sealed(value)) {
            if (!cipher) throw std::runtime_error("secrets in storage are encrypted but no key is configured");
            try {
                value = cipher->decrypt(value);
            } catch (const std::exception& e) {
                throw SecretsKeyMismatch("cannot decrypt secret '" + std::string(as_view(it->name)) +
                                         "' with <data-dir>/secrets.key (" + e.what() +
                                         "); every node sharing storage needs the same key file");
            }
        } else {
            plain_found = true;  // written before encryption existed: sealed by load()
        }
        security::Redactor::global().add(value);
        secrets.AddMember(Json(it->name, a), Json(value.c_str(), a), a);
    }
    return secrets;
}

bool Environment::reload() {
    std::shared_ptr<const security::SecretCipher> cipher;
    uint64_t generation = 0;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        cipher = cipher_;
        generation = generation_;
    }
    JsonDocument variables = read_variables();
    std::optional<JsonDocument> secrets;
    std::string error;
    try {
        bool plain_found = false;
        secrets = read_secrets(cipher.get(), plain_found);
    } catch (const std::exception& e) {
        error = e.what();
    }
    std::lock_guard<std::mutex> lock(mutex_);
    if (generation != generation_) return false;  // this node wrote meanwhile: what was read is older
    if (error != reload_error_) {
        if (!error.empty())
            Poco::Logger::get("sluice.node").warning("keeping the secrets read before: " + error);
        else
            Poco::Logger::get("sluice.node").information("the stored secrets open with this node's key again");
        reload_error_ = error;
    }
    const bool variables_changed = to_json(variables) != to_json(variables_);
    variables_ = std::move(variables);
    if (secrets) secrets_ = std::move(*secrets);
    return variables_changed;
}

void Environment::save_secrets_locked(const JsonDocument& plain) {
    JsonDocument sealed(rapidjson::kObjectType);
    auto& a = sealed.GetAllocator();
    for (auto it = plain.MemberBegin(); it != plain.MemberEnd(); ++it) {
        const std::string value(as_view(it->value));
        const std::string stored = cipher_ ? cipher_->encrypt(value) : value;
        sealed.AddMember(Json(it->name, a), Json(stored.c_str(), a), a);
    }
    store_.state_put(kSecretsKey, sealed);
}

void Environment::set_cipher(std::shared_ptr<const security::SecretCipher> next) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    bool plain_found = false;
    secrets_ = read_secrets(cipher_.get(), plain_found);  // what is stored now, opened with the old key
    cipher_ = std::move(next);
    save_secrets_locked(secrets_);
}

JsonDocument Environment::variables() const {
    std::lock_guard<std::mutex> lock(mutex_);
    JsonDocument copy;
    copy.CopyFrom(variables_, copy.GetAllocator());
    return copy;
}

void Environment::set_variables(const Json& object, bool replace, const VariablesCheck& check) {
    if (!object.IsObject()) throw std::invalid_argument("environment variables must be a JSON object");
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    variables_ = read_variables();  // another node's change since the last reload is kept
    JsonDocument next;
    if (replace) {
        next.CopyFrom(object, next.GetAllocator());
    } else {
        next.CopyFrom(variables_, next.GetAllocator());
        for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
            next.RemoveMember(it->name);
            next.AddMember(Json(it->name, next.GetAllocator()), Json(it->value, next.GetAllocator()),
                           next.GetAllocator());
        }
    }
    if (check) check(next);
    store_.state_put(kEnvKey, next);
    variables_ = std::move(next);
}

bool Environment::erase_variable(const std::string& name, const VariablesCheck& check) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    variables_ = read_variables();
    JsonDocument next;
    next.CopyFrom(variables_, next.GetAllocator());
    if (!next.RemoveMember(name.c_str())) return false;
    if (check) check(next);
    store_.state_put(kEnvKey, next);
    variables_ = std::move(next);
    return true;
}

std::vector<std::string> Environment::secret_names() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::string> names;
    for (auto it = secrets_.MemberBegin(); it != secrets_.MemberEnd(); ++it) names.emplace_back(as_view(it->name));
    return names;
}

std::optional<std::string> Environment::secret(const std::string& name) const {
    std::lock_guard<std::mutex> lock(mutex_);
    const Json* value = find_member(secrets_, name);
    if (!value || !value->IsString()) return std::nullopt;
    return std::string(as_view(*value));
}

void Environment::set_secrets(const Json& object, bool replace) {
    if (!object.IsObject()) throw std::invalid_argument("secrets must be a JSON object of name: value strings");
    for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
        if (!it->value.IsString())
            throw std::invalid_argument("secret '" + std::string(as_view(it->name)) + "' must be a string");
    }
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    // Written as a whole: a merge starts from what is stored now (another node may have changed
    // it), and is refused (changing nothing) when this node's key cannot open that.
    bool plain_found = false;
    if (!replace) secrets_ = read_secrets(cipher_.get(), plain_found);
    JsonDocument next;
    if (replace) {
        next.CopyFrom(object, next.GetAllocator());
    } else {
        next.CopyFrom(secrets_, next.GetAllocator());
        for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
            next.RemoveMember(it->name);
            next.AddMember(Json(it->name, next.GetAllocator()), Json(it->value, next.GetAllocator()),
                           next.GetAllocator());
        }
    }
    save_secrets_locked(next);
    for (auto it = next.MemberBegin(); it != next.MemberEnd(); ++it)
        security::Redactor::global().add(std::string(as_view(it->value)));
    secrets_ = std::move(next);
}

bool Environment::erase_secret(const std::string& name) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++generation_;
    bool plain_found = false;
    secrets_ = read_secrets(cipher_.get(), plain_found);
    JsonDocument next;
    next.CopyFrom(secrets_, next.GetAllocator());
    if (!next.RemoveMember(name.c_str())) return false;
    save_secrets_locked(next);
    secrets_ = std::move(next);
    return true;
}

void substitute_env(Json& value, JsonAllocator& allocator, const Json& variables, const std::string& pointer,
                    std::vector<UnresolvedReference>& unresolved) {
    if (value.IsObject()) {
        for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it)
            substitute_env(it->value, allocator, variables, pointer + "/" + escape_pointer_token(as_view(it->name)),
                           unresolved);
        return;
    }
    if (value.IsArray()) {
        for (rapidjson::SizeType i = 0; i < value.Size(); ++i)
            substitute_env(value[i], allocator, variables, pointer + "/" + std::to_string(i), unresolved);
        return;
    }
    if (!value.IsString()) return;
    const std::string_view text = as_view(value);
    std::string_view name;
    size_t end = 0;
    size_t at = find_reference(text, "ENV", 0, name, end);
    if (at == std::string_view::npos) return;
    // The whole string is one reference: take the variable's JSON value, whatever its type.
    if (at == 0 && end == text.size()) {
        const Json* v = find_member(variables, name);
        if (!v) {
            unresolved.push_back({pointer, std::string(name)});
            return;
        }
        value.CopyFrom(*v, allocator);
        return;
    }
    std::string out;
    size_t from = 0;
    bool complete = true;
    while (at != std::string_view::npos) {
        out.append(text.substr(from, at - from));
        const Json* v = find_member(variables, name);
        if (v) {
            out += value_as_text(*v);
        } else {
            unresolved.push_back({pointer, std::string(name)});
            complete = false;
            out.append(text.substr(at, end - at));
        }
        from = end;
        at = find_reference(text, "ENV", from, name, end);
    }
    out.append(text.substr(from));
    if (complete || out != text) value.SetString(out.c_str(), static_cast<rapidjson::SizeType>(out.size()), allocator);
}

std::string substitute_secrets(const std::string& json_text,
                               const std::function<std::optional<std::string>(const std::string&)>& secret) {
    if (json_text.find("$SECRET(") == std::string::npos) return json_text;
    JsonDocument doc = parse_json(json_text, "component config");
    std::function<void(Json&)> walk = [&](Json& value) {
        if (value.IsObject()) {
            for (auto it = value.MemberBegin(); it != value.MemberEnd(); ++it) walk(it->value);
        } else if (value.IsArray()) {
            for (Json& item : value.GetArray()) walk(item);
        } else if (value.IsString()) {
            const std::string_view text = as_view(value);
            std::string_view name;
            size_t end = 0;
            size_t at = find_reference(text, "SECRET", 0, name, end);
            if (at == std::string_view::npos) return;
            std::string out;
            size_t from = 0;
            while (at != std::string_view::npos) {
                out.append(text.substr(from, at - from));
                std::optional<std::string> v = secret ? secret(std::string(name)) : std::nullopt;
                if (!v) throw std::runtime_error("unknown secret '" + std::string(name) + "'");
                out += *v;
                from = end;
                at = find_reference(text, "SECRET", from, name, end);
            }
            out.append(text.substr(from));
            value.SetString(out.c_str(), static_cast<rapidjson::SizeType>(out.size()), doc.GetAllocator());
        }
    };
    walk(doc);
    return to_json(doc);
}

}  // namespace sluice::kernel

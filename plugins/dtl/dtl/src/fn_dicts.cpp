// fn_dicts.cpp — dictionaries, namespaces, NIs, encryption, phone numbers, misc
// (reference §4.3 "Dictionaries", "Namespaced identifiers", "Encryption", "Phone numbers", "Misc").
#include "fn_common.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>

namespace sluice::dtl {

namespace {

std::vector<const Json*> items_of(const Json* v) {
    std::vector<const Json*> out;
    if (v->IsArray()) for (const Json& e : v->GetArray()) out.push_back(&e);
    else if (!v->IsNull()) out.push_back(v);
    return out;
}

// ---- dict ----------------------------------------------------------------------------------
void dict_put(Json& obj, const Json& key, const Json& value, Ctx& c) {
    if (!key.IsString()) return;
    Json v;
    shallow_copy(v, value, *c.a);
    set_member(obj, sv(key), v, *c.a);
}
const Json* f_dict(const Node& n, Ctx& c, Json& tmp) {
    Json obj(rapidjson::kObjectType);
    if (n.args.size() == 1) {
        Json t;
        const Json* v = ev(n.args[0], c, t);
        if (v->IsObject()) return own(v, tmp, c);
        for (const Json* pair : items_of(v)) {
            if (pair->IsArray() && pair->Size() == 2) dict_put(obj, (*pair)[0], (*pair)[1], c);
            else if (pair->IsObject() && pair->HasMember("key") && pair->HasMember("value"))
                dict_put(obj, (*pair)["key"], (*pair)["value"], c);
        }
    } else {
        for (size_t i = 0; i + 1 < n.args.size(); i += 2) {
            Json tk, tv;
            const Json* k = ev(n.args[i], c, tk);
            const Json* v = ev(n.args[i + 1], c, tv);
            dict_put(obj, *k, *v, c);
        }
    }
    tmp = std::move(obj);
    return &tmp;
}
void hook_dict(Compiler& c, Node& n, const Json& call) {
    if (call.Size() > 2 && (call.Size() - 1) % 2 != 0)
        c.fail("function \"dict\" takes no arguments, one list of [key, value] pairs, or key/value pairs");
    c.compile_args(n, call);
}
const Json* f_has_key(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* k = first_value(ev(n.args[0], c, t1));
    const Json* d = ev(n.args[1], c, t2);
    if (!d->IsObject() || !k->IsString()) return &kNull;
    return ret_bool(tmp, d->HasMember(*k));
}
template <int What>  // 0 items, 1 key-values, 2 keys, 3 values
const Json* f_dict_list(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    Json list(rapidjson::kArrayType);
    for (const Json* d : items_of(ev(n.args[0], c, t))) {
        if (!d->IsObject()) continue;
        for (auto it = d->MemberBegin(); it != d->MemberEnd(); ++it) {
            Json k, v;
            shallow_copy(k, it->name, *c.a);
            shallow_copy(v, it->value, *c.a);
            if (What == 0) {
                Json pair(rapidjson::kArrayType);
                pair.PushBack(k, *c.a);
                pair.PushBack(v, *c.a);
                list.PushBack(pair, *c.a);
            } else if (What == 1) {
                Json kv(rapidjson::kObjectType);
                kv.AddMember("key", k, *c.a);
                kv.AddMember("value", v, *c.a);
                list.PushBack(kv, *c.a);
            } else if (What == 2) {
                list.PushBack(k, *c.a);
            } else {
                list.PushBack(v, *c.a);
            }
        }
    }
    tmp = std::move(list);
    return &tmp;
}

// path PATH VALUES: PATH is a dotted string (quoting as in paths) or a list of keys.
const Json* f_path(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* p = ev(n.args[0], c, t1);
    std::vector<std::string> keys;
    if (p->IsString()) keys = split_path(std::string(sv(*p)));
    else if (p->IsArray())
        for (const Json& k : p->GetArray())
            if (k.IsString()) keys.emplace_back(sv(k));
    const Json* v = ev(n.args[1], c, t2);
    if (keys.empty()) return own(v, tmp, c);
    std::vector<const Json*> found;
    if (!v->IsArray() && v->IsObject()) {
        // a single dict: the value itself when the path is not mapped over a list
        const Json* cur = v;
        size_t i = 0;
        for (; i < keys.size() && cur->IsObject(); ++i) {
            auto it = cur->FindMember(Json(rapidjson::StringRef(keys[i].data(), keys[i].size())));
            if (it == cur->MemberEnd()) return &kNull;
            cur = &it->value;
        }
        if (i == keys.size()) return own(cur, tmp, c);
        if (!cur->IsArray()) return &kNull;
    }
    path_values(*v, keys, found);
    Json list(rapidjson::kArrayType);
    for (const Json* f : found) push_copy(list, *f, c);
    tmp = std::move(list);
    return &tmp;
}

// ---- namespaces ------------------------------------------------------------------------------
struct NsOptions {
    std::string property_ns, identity_ns;
    bool skip_underscore = true, skip_dollar = true, recursive = false;
};
void add_ns(const Json& in, Json& out, const NsOptions& o, Ctx& c, bool root) {
    if (!in.IsObject()) {
        shallow_copy(out, in, *c.a);
        return;
    }
    out.SetObject();
    for (auto it = in.MemberBegin(); it != in.MemberEnd(); ++it) {
        std::string_view key = sv(it->name);
        Json k, v;
        bool skip = (o.skip_underscore && !key.empty() && key[0] == '_') || (o.skip_dollar && !key.empty() && key[0] == '$');
        if (skip || o.property_ns.empty()) shallow_copy(k, it->name, *c.a);
        else set_text(k, o.property_ns + ":" + std::string(key), c);
        if (root && key == "_id" && it->value.IsString() && !o.identity_ns.empty())
            set_text(v, o.identity_ns + ":" + std::string(sv(it->value)), c);
        else if (o.recursive && it->value.IsObject())
            add_ns(it->value, v, o, c, false);
        else if (o.recursive && it->value.IsArray()) {
            v.SetArray();
            for (const Json& e : it->value.GetArray()) {
                Json x;
                add_ns(e, x, o, c, false);
                v.PushBack(x, *c.a);
            }
        } else
            shallow_copy(v, it->value, *c.a);
        out.AddMember(k, v, *c.a);
    }
}
const Json* f_apply_ns(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Json* spec = first_value(ev(n.args[0], c, t1));
    NsOptions o;
    if (spec->IsString()) {
        o.property_ns = o.identity_ns = std::string(sv(*spec));
    } else if (spec->IsObject()) {
        o.property_ns = string_or_empty(*spec, "property_namespace");
        o.identity_ns = string_or_empty(*spec, "identity_namespace");
        if (spec->HasMember("skip_underscore") && (*spec)["skip_underscore"].IsBool()) o.skip_underscore = (*spec)["skip_underscore"].GetBool();
        if (spec->HasMember("skip_dollar") && (*spec)["skip_dollar"].IsBool()) o.skip_dollar = (*spec)["skip_dollar"].GetBool();
        if (spec->HasMember("recursive") && (*spec)["recursive"].IsBool()) o.recursive = (*spec)["recursive"].GetBool();
    } else {
        return &kNull;
    }
    return map_values(ev(n.args[1], c, t2), c, tmp, [&](const Json& e, Json& out) {
        if (!e.IsObject()) return false;
        add_ns(e, out, o, c, true);
        return true;
    });
}
void strip_ns(const Json& in, Json& out, Ctx& c) {
    if (in.IsObject()) {
        out.SetObject();
        for (auto it = in.MemberBegin(); it != in.MemberEnd(); ++it) {
            std::string_view key = sv(it->name);
            size_t colon = key.rfind(':');
            Json k, v;
            if (colon == std::string_view::npos) shallow_copy(k, it->name, *c.a);
            else set_text(k, key.substr(colon + 1), c);
            strip_ns(it->value, v, c);
            set_member(out, sv(k), v, *c.a);
        }
    } else if (in.IsArray()) {
        out.SetArray();
        for (const Json& e : in.GetArray()) {
            Json x;
            strip_ns(e, x, c);
            out.PushBack(x, *c.a);
        }
    } else {
        shallow_copy(out, in, *c.a);
    }
}
const Json* f_strip_ns(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    const Json* v = ev(n.args[0], c, t);
    strip_ns(*v, tmp, c);
    return &tmp;
}

// ---- NIs -----------------------------------------------------------------------------------
const Json* f_ni(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::string ns;
    if (n.args.size() == 2) {
        const Json* v = first_value(ev(n.args[0], c, t1));
        if (!v->IsString()) return &kNull;
        ns = std::string(sv(*v));
    }
    return map_values(ev(n.args.back(), c, t2), c, tmp, [&](const Json& e, Json& o) {
        Type ty = type_of(e);
        if (ty == Type::Ni) {
            copy_into(o, e, c);
            return true;
        }
        std::string id;
        if (ty == Type::Uri) {
            std::string_view uri = sv(e).substr(2), prefix;
            const std::string* best = nullptr;
            static const std::vector<std::pair<std::string, std::string>> builtin = {
                {"_", "http://example.org/"},
                {"rdf", "http://www.w3.org/1999/02/22-rdf-syntax-ns#"},
                {"rdfs", "http://www.w3.org/2000/01/rdf-schema#"},
                {"owl", "http://www.w3.org/2002/07/owl#"},
                {"foaf", "http://xmlns.com/foaf/0.1/"},
                {"wgs84", "http://www.w3.org/2003/01/geo/wgs84_pos#"},
                {"xsd", "http://www.w3.org/2001/XMLSchema#"},
                {"dc", "http://purl.org/dc/elements/1.1/"},
                {"skos", "http://www.w3.org/2004/02/skos/core#"},
                {"dcterms", "http://purl.org/dc/terms/"}};
            size_t best_len = 0;
            auto consider = [&](const std::vector<std::pair<std::string, std::string>>& list) {
                for (const auto& [ns, base] : list)
                    if (base.size() > best_len && uri.substr(0, base.size()) == base) {
                        best = &ns;
                        best_len = base.size();
                    }
            };
            if (c.prog) consider(c.prog->options.namespaces);
            consider(builtin);
            if (best && best_len < uri.size()) {
                set_text(o, make_ni_text(*best == "_" ? std::string_view() : std::string_view(*best), uri.substr(best_len)), c);
                return true;
            }
            id = std::string(uri);  // no declared namespace: the whole URI, global namespace
        } else if (ty == Type::String) {
            id = std::string(sv(e));
        } else if (ty == Type::Int || ty == Type::BigInt) {
            id = serialize(e);
        } else {
            return false;
        }
        set_text(o, make_ni_text(ns, id), c);
        return true;
    });
}
// "~:ns:id" → ns "ns", id "id"; "~:id" → global (ns empty).
void split_ni(std::string_view ni, std::string_view& ns, std::string_view& id) {
    std::string_view body = ni.substr(2);
    size_t colon = body.find(':');
    if (colon == std::string_view::npos) {
        ns = {};
        id = body;
    } else {
        ns = body.substr(0, colon);
        id = body.substr(colon + 1);
    }
}
template <bool Id>
const Json* f_ni_part(const Node& n, Ctx& c, Json& tmp) {
    Json t;
    return map_values(ev(n.args[0], c, t), c, tmp, [&](const Json& e, Json& o) {
        if (type_of(e) != Type::Ni) return false;
        std::string_view ns, id;
        split_ni(sv(e), ns, id);
        if (!Id && ns.empty()) {
            o.SetNull();
            return true;
        }
        set_text(o, Id ? id : ns, c);
        return true;
    });
}

// ---- encryption ------------------------------------------------------------------------------
std::string text_arg(const Json* v) {
    v = first_value(v);
    if (type_of(*v) == Type::Bytes) {
        std::string out;
        base64_decode(sv(*v).substr(2), out);
        return out;
    }
    return v->IsString() ? std::string(sv(*v)) : std::string();
}
bool plaintext_of(const Json& e, std::string& out) {
    if (type_of(e) == Type::Bytes) return base64_decode(sv(e).substr(2), out);
    if (is_plain_string(e)) {
        out = std::string(sv(e));
        return true;
    }
    return false;
}
std::string fernet_key(const std::string& key_text) {
    std::string key;
    if (!base64_decode(key_text, key, true) || key.size() != 32)
        throw RuntimeError("encrypt/decrypt: the key must be 32 url-safe base64-encoded bytes (a Fernet key)");
    return key;
}
std::string hmac_sha256(std::string_view key, std::string_view data) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
         data.size(), md, &len);
    return std::string(reinterpret_cast<char*>(md), len);
}
struct CipherCtx {
    EVP_CIPHER_CTX* p = EVP_CIPHER_CTX_new();
    ~CipherCtx() { EVP_CIPHER_CTX_free(p); }
};
bool aes_cbc(bool enc, std::string_view key, std::string_view iv, std::string_view in, std::string& out) {
    CipherCtx ctx;
    if (!ctx.p || EVP_CipherInit_ex(ctx.p, EVP_aes_128_cbc(), nullptr, reinterpret_cast<const unsigned char*>(key.data()),
                                    reinterpret_cast<const unsigned char*>(iv.data()), enc ? 1 : 0) != 1)
        return false;
    out.resize(in.size() + 32);
    int len1 = 0, len2 = 0;
    if (EVP_CipherUpdate(ctx.p, reinterpret_cast<unsigned char*>(out.data()), &len1,
                         reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size())) != 1)
        return false;
    if (EVP_CipherFinal_ex(ctx.p, reinterpret_cast<unsigned char*>(out.data()) + len1, &len2) != 1) return false;
    out.resize(static_cast<size_t>(len1 + len2));
    return true;
}
std::string fernet_encrypt(const std::string& key, const std::string& plain) {
    std::string token(1, '\x80');
    uint64_t ts = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                            std::chrono::system_clock::now().time_since_epoch()).count());
    for (int i = 7; i >= 0; --i) token.push_back(static_cast<char>((ts >> (i * 8)) & 0xff));
    std::string iv(16, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(iv.data()), 16) != 1) throw RuntimeError("encrypt: no randomness");
    std::string cipher;
    if (!aes_cbc(true, std::string_view(key).substr(16), iv, plain, cipher)) throw RuntimeError("encrypt: cipher failed");
    token += iv + cipher;
    token += hmac_sha256(std::string_view(key).substr(0, 16), token);
    return base64_encode(token, true);
}
bool fernet_decrypt(const std::string& key, std::string_view token_text, std::string& plain) {
    std::string token;
    if (!base64_decode(token_text, token, true) || token.size() < 1 + 8 + 16 + 16 + 32 || token[0] != '\x80') return false;
    std::string_view body(token.data(), token.size() - 32), mac(token.data() + token.size() - 32, 32);
    std::string expect = hmac_sha256(std::string_view(key).substr(0, 16), body);
    if (CRYPTO_memcmp(expect.data(), mac.data(), 32) != 0) return false;
    return aes_cbc(false, std::string_view(key).substr(16), body.substr(9, 16), body.substr(25), plain);
}
const Json* f_encrypt(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::string key = fernet_key(text_arg(ev(n.args[0], c, t1)));
    return map_values(ev(n.args[1], c, t2), c, tmp, [&](const Json& e, Json& o) {
        std::string plain;
        if (!plaintext_of(e, plain)) return false;
        set_text(o, fernet_encrypt(key, plain), c);
        return true;
    });
}
const Json* f_decrypt(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::string key = fernet_key(text_arg(ev(n.args[0], c, t1)));
    return map_values(ev(n.args[1], c, t2), c, tmp, [&](const Json& e, Json& o) {
        std::string_view token;
        std::string plain;
        if (!plain_text(e, token) || !fernet_decrypt(key, token, plain)) return false;
        set_text(o, plain, c);
        return true;
    });
}
struct Pkey {
    EVP_PKEY* p = nullptr;
    ~Pkey() { EVP_PKEY_free(p); }
};
void load_key(const std::string& pem, bool is_public, Pkey& key) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    key.p = is_public ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr)
                      : PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (!key.p) throw RuntimeError(std::string(is_public ? "encrypt-pki" : "decrypt-pki") + ": not a PEM " +
                                   (is_public ? "public" : "private") + " key");
}
bool rsa_crypt(EVP_PKEY* key, bool enc, std::string_view in, std::string& out) {
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new(key, nullptr);
    if (!ctx) return false;
    bool ok = (enc ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1 &&
              EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
              EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1;
    size_t len = 0;
    auto run = [&](unsigned char* dst, size_t* n) {
        return enc ? EVP_PKEY_encrypt(ctx, dst, n, reinterpret_cast<const unsigned char*>(in.data()), in.size())
                   : EVP_PKEY_decrypt(ctx, dst, n, reinterpret_cast<const unsigned char*>(in.data()), in.size());
    };
    ok = ok && run(nullptr, &len) == 1;
    if (ok) {
        out.resize(len);
        ok = run(reinterpret_cast<unsigned char*>(out.data()), &len) == 1;
        out.resize(len);
    }
    EVP_PKEY_CTX_free(ctx);
    return ok;
}
const Json* f_encrypt_pki(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    Pkey key;
    load_key(text_arg(ev(n.args[0], c, t1)), true, key);
    return map_values(ev(n.args[1], c, t2), c, tmp, [&](const Json& e, Json& o) {
        std::string plain, cipher;
        if (!plaintext_of(e, plain)) return false;
        if (!rsa_crypt(key.p, true, plain, cipher)) throw RuntimeError("encrypt-pki: the value is too long for the key");
        set_text(o, "~b" + base64_encode(cipher), c);
        return true;
    });
}
const Json* f_decrypt_pki(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    Pkey key;
    load_key(text_arg(ev(n.args[0], c, t1)), false, key);
    return map_values(ev(n.args[1], c, t2), c, tmp, [&](const Json& e, Json& o) {
        std::string cipher, plain;
        if (!plaintext_of(e, cipher) || !rsa_crypt(key.p, false, cipher, plain)) return false;
        set_text(o, plain, c);
        return true;
    });
}

// ---- phone numbers (E.164 with a built-in country calling code table; see docs/dtl.md) -------
struct Region {
    const char* iso;
    const char* code;
    bool trunk_zero;  // national numbers start with a 0 that is dropped internationally
};
const Region kRegions[] = {
    {"US", "1", false}, {"CA", "1", false}, {"RU", "7", true},  {"EG", "20", true}, {"ZA", "27", true},
    {"GR", "30", false}, {"NL", "31", true}, {"BE", "32", true}, {"FR", "33", true}, {"ES", "34", false},
    {"HU", "36", true}, {"IT", "39", false}, {"RO", "40", true}, {"CH", "41", true}, {"AT", "43", true},
    {"GB", "44", true}, {"DK", "45", false}, {"SE", "46", true}, {"NO", "47", false}, {"PL", "48", false},
    {"DE", "49", true}, {"MX", "52", false}, {"BR", "55", true}, {"AU", "61", true}, {"NZ", "64", true},
    {"JP", "81", true}, {"KR", "82", true}, {"CN", "86", true}, {"TR", "90", true}, {"IN", "91", true},
    {"PT", "351", false}, {"LU", "352", false}, {"IE", "353", true}, {"IS", "354", false}, {"FI", "358", true},
    {"EE", "372", false}, {"LV", "371", false}, {"LT", "370", true}, {"UA", "380", true}, {"CZ", "420", false},
};
const Region* region_by_iso(std::string_view iso) {
    std::string up(iso);
    for (char& ch : up) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    for (const Region& r : kRegions)
        if (up == r.iso) return &r;
    return nullptr;
}
const Region* region_by_number(std::string_view digits) {
    for (size_t len = 1; len <= 3; ++len)
        for (const Region& r : kRegions)
            if (digits.size() > len && digits.substr(0, len) == r.code && std::strlen(r.code) == len) return &r;
    return nullptr;
}
// "+4722222222" from free text; false when it cannot be made international.
bool parse_phone(std::string_view s, const Region* region, std::string& e164) {
    if (s.substr(0, 4) == "tel:") s.remove_prefix(4);
    std::string digits;
    bool plus = false;
    for (size_t i = 0; i < s.size(); ++i) {
        char ch = s[i];
        if (ch == '+' && digits.empty() && !plus) plus = true;
        else if (ch >= '0' && ch <= '9') digits.push_back(ch);
        else if (ch == ' ' || ch == '-' || ch == '.' || ch == '(' || ch == ')' || ch == '/') continue;
        else return false;
    }
    if (!plus && digits.size() > 2 && digits.compare(0, 2, "00") == 0) {
        digits.erase(0, 2);
        plus = true;
    }
    if (!plus) {
        if (!region) return false;
        if (region->trunk_zero && !digits.empty() && digits[0] == '0') digits.erase(0, 1);
        digits = region->code + digits;
    }
    if (digits.size() < 6 || digits.size() > 15 || !region_by_number(digits)) return false;
    e164 = "+" + digits;
    return true;
}
const Json* f_phonenumber_parse(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    const Region* region = nullptr;
    if (n.args.size() == 2) {
        const Json* r = first_value(ev(n.args[0], c, t1));
        if (!r->IsString() || !(region = region_by_iso(sv(*r)))) return &kNull;
    }
    return map_values(ev(n.args.back(), c, t2), c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        std::string number;
        if (type_of(e) == Type::Uri) s = sv(e).substr(2);
        else if (!plain_text(e, s)) return false;
        if (!parse_phone(s, region, number)) return false;
        set_text(o, "~rtel:" + number, c);
        return true;
    });
}
const Json* f_phonenumber_format(const Node& n, Ctx& c, Json& tmp) {
    Json t1, t2;
    std::string_view fmt;
    if (!plain_text(*first_value(ev(n.args[0], c, t1)), fmt)) return &kNull;
    static const char* const kFormats[] = {"e164", "rfc3966", "national", "international", "national-e164", "isocode", "country-code"};
    if (std::find(std::begin(kFormats), std::end(kFormats), fmt) == std::end(kFormats))
        throw RuntimeError("phonenumber-format: unknown format \"" + std::string(fmt) + "\"");
    return map_values(ev(n.args[1], c, t2), c, tmp, [&](const Json& e, Json& o) {
        std::string_view s;
        std::string number;
        if (type_of(e) == Type::Uri) s = sv(e).substr(2);
        else if (!plain_text(e, s)) return false;
        if (!parse_phone(s, nullptr, number)) return false;
        const Region* r = region_by_number(std::string_view(number).substr(1));
        std::string cc = r->code, national = number.substr(1 + cc.size());
        std::string out;
        if (fmt == "e164") out = number;
        else if (fmt == "rfc3966") out = "tel:+" + cc + "-" + national;
        else if (fmt == "international") out = "+" + cc + " " + national;
        else if (fmt == "national") out = (r->trunk_zero ? "0" : "") + national;
        else if (fmt == "national-e164") out = national;
        else if (fmt == "isocode") out = r->iso;
        else {
            o.SetInt64(std::stoll(cc));
            return true;
        }
        set_text(o, out, c);
        return true;
    });
}

// ---- misc ----------------------------------------------------------------------------------
// is-changed FUNC: Sluice transforms see no previous version of the source entity: null.
const Json* f_null(const Node&, Ctx&, Json&) { return &kNull; }

}  // namespace

std::string string_or_empty(const Json& obj, const char* key) {
    auto it = obj.FindMember(key);
    return it != obj.MemberEnd() && it->value.IsString() ? std::string(sv(it->value)) : std::string();
}

void register_dicts(FnTable& t) {
    t["dict"] = {0, -1, &f_dict, &hook_dict};
    t["has-key"] = {2, 2, &f_has_key};
    t["items"] = {1, 1, &f_dict_list<0>};
    t["key-values"] = {1, 1, &f_dict_list<1>};
    t["keys"] = {1, 1, &f_dict_list<2>};
    t["values"] = {1, 1, &f_dict_list<3>};
    t["path"] = {2, 2, &f_path};
    t["apply-ns"] = {2, 2, &f_apply_ns};
    t["strip-ns"] = {1, 1, &f_strip_ns};
    t["ni"] = {1, 2, &f_ni};
    t["ni-id"] = {1, 1, &f_ni_part<true>};
    t["ni-ns"] = {1, 1, &f_ni_part<false>};
    t["encrypt"] = {2, 2, &f_encrypt};
    t["decrypt"] = {2, 2, &f_decrypt};
    t["encrypt-pki"] = {2, 2, &f_encrypt_pki};
    t["decrypt-pki"] = {2, 2, &f_decrypt_pki};
    t["encrypt-pgp"] = {2, 2, nullptr, nullptr, "OpenPGP is not available in Sluice (use encrypt-pki or encrypt)"};
    t["decrypt-pgp"] = {3, 3, nullptr, nullptr, "OpenPGP is not available in Sluice (use decrypt-pki or decrypt)"};
    t["phonenumber-parse"] = {1, 2, &f_phonenumber_parse};
    t["phonenumber-format"] = {2, 2, &f_phonenumber_format};
    t["is-changed"] = {1, 1, &f_null};
    t["completeness"] = {2, 2, &f_null};
    for (const char* name : {"curie", "uri-expand", "lookup", "reference", "ni-collapse", "ni-expand"})
        t[name] = {0, -1, nullptr, nullptr, "deprecated in Sesam and not implemented"};
}

}  // namespace sluice::dtl

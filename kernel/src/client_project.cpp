// The Sesam working-directory layout (reference §6.2): reading and checking it, where each
// config entity's file lives, and comparing it with a node's configuration.
#include <sluice/kernel/client.hpp>

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>

namespace sluice::kernel::client {

namespace {

std::string read_file(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + file.string());
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

// The *.conf.json files directly in `dir`, by name.
std::vector<fs::path> conf_files(const fs::path& dir) {
    std::vector<fs::path> files;
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return files;
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
        const std::string name = entry.path().filename().string();
        if (entry.is_regular_file(ec) && name.size() > 10 && name.compare(name.size() - 10, 10, ".conf.json") == 0)
            files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    return files;
}

bool safe_file_id(const std::string& id) {
    return !id.empty() && id != "." && id != ".." && id.find_first_of("/\\") == std::string::npos &&
           id.find('\0') == std::string::npos;
}

std::string kind_of(const Json& entity) {
    const std::string type = string_or(entity, "type", "");
    if (type == "pipe") return "pipe";
    if (type == "metadata") return "metadata";
    if (type.rfind("system:", 0) == 0) return "system";
    return "";
}

}  // namespace

std::string LocalProject::file_of(const std::string& id) const {
    for (const LocalEntity& e : index)
        if (e.id == id) return e.file;
    return {};
}

LocalProject read_project(const fs::path& dir, const std::string& profile) {
    LocalProject project;
    auto& a = project.entities.GetAllocator();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
        project.errors.push_back(dir.string() + ": not a directory");
        return project;
    }
    std::map<std::string, std::string> seen;  // _id → file

    // `expected_kind`: what the file's folder says each entity must be.
    auto load = [&](const fs::path& file, const std::string& rel, const std::string& expected_kind) {
        JsonDocument doc;
        try {
            doc = parse_json_text(read_file(file), rel);
        } catch (const std::exception& e) {
            project.errors.push_back(e.what());
            return;
        }
        std::vector<const Json*> items;
        if (doc.IsArray()) {
            for (const Json& item : doc.GetArray()) items.push_back(&item);
            if (items.empty()) project.warnings.push_back(rel + ": the file holds an empty list");
        } else {
            items.push_back(&doc);
        }
        const std::string stem = fs::path(rel).filename().string();
        for (size_t i = 0; i < items.size(); ++i) {
            const Json& e = *items[i];
            const std::string where = doc.IsArray() ? rel + " [" + std::to_string(i) + "]" : rel;
            if (!e.IsObject()) {
                project.errors.push_back(where + ": expected a JSON object (a configuration entity)");
                continue;
            }
            const Json* id = find_member(e, "_id");
            if (!id || !id->IsString() || id->GetStringLength() == 0) {
                project.errors.push_back(where + ": /_id: must be a non-empty string");
                continue;
            }
            const std::string entity_id(as_view(*id));
            const Json* type = find_member(e, "type");
            const std::string type_text = type && type->IsString() ? std::string(as_view(*type)) : "";
            bool ok = true;
            if (expected_kind == "pipe" && type_text != "pipe") {
                project.errors.push_back(where + ": /type: a pipe's type must be \"pipe\"" +
                                         (type_text.empty() ? "" : ", got \"" + type_text + "\""));
                ok = false;
            } else if (expected_kind == "system" && type_text.rfind("system:", 0) != 0) {
                project.errors.push_back(where + ": /type: a system's type must be \"system:<kind>\"" +
                                         (type_text.empty() ? "" : ", got \"" + type_text + "\""));
                ok = false;
            } else if (expected_kind == "metadata") {
                if (type_text != "metadata") {
                    project.errors.push_back(where + ": /type: must be \"metadata\"");
                    ok = false;
                }
                if (entity_id != "node") {
                    project.errors.push_back(where + ": /_id: the metadata entity's _id must be \"node\"");
                    ok = false;
                }
            }
            if (!ok) continue;
            if (expected_kind != "metadata" && !safe_file_id(entity_id)) {
                project.errors.push_back(where + ": /_id: '" + entity_id + "' cannot be used as a file name");
                continue;
            }
            if (auto it = seen.find(entity_id); it != seen.end()) {
                project.errors.push_back(where + ": /_id: '" + entity_id + "' is also defined in " + it->second);
                continue;
            }
            seen.emplace(entity_id, rel);
            if (expected_kind != "metadata" && !doc.IsArray() && stem != entity_id + ".conf.json")
                project.warnings.push_back(rel + ": holds '" + entity_id + "'; download will name it " +
                                           expected_kind + "s/" + entity_id + ".conf.json");
            project.entities.PushBack(Json(e, a), a);
            project.index.push_back({rel, entity_id, expected_kind});
        }
    };

    if (fs::is_regular_file(dir / "node-metadata.conf.json", ec))
        load(dir / "node-metadata.conf.json", "node-metadata.conf.json", "metadata");
    for (const fs::path& f : conf_files(dir / "systems")) load(f, "systems/" + f.filename().string(), "system");
    for (const fs::path& f : conf_files(dir / "pipes")) load(f, "pipes/" + f.filename().string(), "pipe");

    const std::string env_name = profile + "-env.json";
    if (fs::is_regular_file(dir / env_name, ec)) {
        project.env_file = env_name;
        try {
            JsonDocument env = parse_json_text(read_file(dir / env_name), env_name);
            if (!env.IsObject()) project.errors.push_back(env_name + ": expected a JSON object of name: value");
            else project.env = std::move(env);
        } catch (const std::exception& e) {
            project.errors.push_back(e.what());
        }
    }
    return project;
}

std::string config_path(const Json& entity) {
    const std::string kind = kind_of(entity);
    const std::string id = string_or(entity, "_id", "");
    if (kind == "metadata") return "node-metadata.conf.json";
    if (!safe_file_id(id)) return {};
    if (kind == "pipe") return "pipes/" + id + ".conf.json";
    if (kind == "system") return "systems/" + id + ".conf.json";
    return {};
}

std::string config_file_text(const Json& entity) {
    DumpOptions options;
    options.indent = 2;
    return dump_json(entity, options) + "\n";
}

std::vector<StatusEntry> compare_config(const LocalProject& local, const Json& node_entities) {
    struct Side {
        std::string file;
        const Json* entity = nullptr;
    };
    // Keyed by kind and _id, so a file holding the wrong name still pairs with its entity.
    std::map<std::string, std::pair<Side, Side>> pairs;
    for (rapidjson::SizeType i = 0; i < local.entities.Size(); ++i) {
        const LocalEntity& e = local.index[i];
        pairs[e.kind + "\n" + e.id].first = {e.file, &local.entities[i]};
    }
    if (node_entities.IsArray()) {
        for (const Json& e : node_entities.GetArray()) {
            const std::string path = config_path(e);
            if (path.empty()) continue;
            pairs[kind_of(e) + "\n" + string_or(e, "_id", "")].second = {path, &e};
        }
    }
    std::vector<StatusEntry> out;
    for (const auto& [key, sides] : pairs) {
        const Side& l = sides.first;
        const Side& n = sides.second;
        StatusEntry entry;
        entry.file = l.entity ? l.file : n.file;
        if (l.entity) entry.local_text = config_file_text(*l.entity);
        if (n.entity) entry.node_text = config_file_text(*n.entity);
        if (!l.entity) entry.state = "only-on-node";
        else if (!n.entity) entry.state = "only-local";
        else if (dump_json(*l.entity) != dump_json(*n.entity)) entry.state = "differs";
        else continue;
        out.push_back(std::move(entry));
    }
    std::sort(out.begin(), out.end(), [](const StatusEntry& x, const StatusEntry& y) { return x.file < y.file; });
    return out;
}

}  // namespace sluice::kernel::client

#include "hits.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace trkx {
namespace {

std::vector<std::string> split(const std::string& line) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) out.push_back(field);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

Hits read_hits(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": file not found");
  std::string line;
  if (!std::getline(in, line)) throw std::runtime_error(path + ": empty file (no header)");
  const auto header = split(trim(line));
  const char* names[] = {"hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"};
  int column[7];
  for (int k = 0; k < 7; ++k) {
    column[k] = -1;
    for (size_t c = 0; c < header.size(); ++c)
      if (header[c] == names[k]) column[k] = static_cast<int>(c);
    if (column[k] < 0) throw std::runtime_error(path + ": missing column '" + names[k] + "'");
  }
  Hits h;
  size_t line_no = 1;
  while (std::getline(in, line)) {
    ++line_no;
    line = trim(line);
    if (line.empty()) continue;
    const auto f = split(line);
    auto bad = [&](int k) {
      return std::runtime_error(path + ": line " + std::to_string(line_no) + ": column '" + names[k] +
                                "' is missing or not a finite number");
    };
    double value[7];
    for (int k = 0; k < 7; ++k) {
      if (static_cast<size_t>(column[k]) >= f.size() || f[column[k]].empty()) throw bad(k);
      const char* s = f[column[k]].c_str();
      char* end = nullptr;
      errno = 0;
      value[k] = std::strtod(s, &end);
      if (end == s || *end != '\0' || errno == ERANGE || !std::isfinite(value[k])) throw bad(k);
    }
    h.hit_id.push_back(static_cast<int64_t>(value[0]));
    h.x.push_back(value[1]);
    h.y.push_back(value[2]);
    h.z.push_back(value[3]);
    h.volume_id.push_back(static_cast<int64_t>(value[4]));
    h.layer_id.push_back(static_cast<int64_t>(value[5]));
    h.module_id.push_back(static_cast<int64_t>(value[6]));
  }
  if (h.size() == 0) throw std::runtime_error(path + ": event has no hits");
  return h;
}

void write_tracks(const std::string& path, const std::vector<int64_t>& hit_id, const std::vector<int64_t>& track_id) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    if (!out) throw std::runtime_error(path + ": cannot write");
    out << "hit_id,track_id\n";
    for (size_t i = 0; i < hit_id.size(); ++i) out << hit_id[i] << ',' << track_id[i] << '\n';
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw std::runtime_error(path + ": cannot write");
}

}  // namespace trkx

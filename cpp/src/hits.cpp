#include "hits.hpp"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iterator>
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
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": file not found");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = text.find('\n');
  if (text.empty()) throw std::runtime_error(path + ": empty file (no header)");
  const auto header = split(trim(text.substr(0, pos)));
  const char* names[] = {"hit_id", "x", "y", "z", "volume_id", "layer_id", "module_id"};
  // for each CSV column, which of the seven it is (-1: ignored)
  std::vector<int> role(header.size(), -1);
  for (int k = 0; k < 7; ++k) {
    bool found = false;
    for (size_t c = 0; c < header.size(); ++c)
      if (header[c] == names[k]) { role[c] = k; found = true; }
    if (!found) throw std::runtime_error(path + ": missing column '" + names[k] + "'");
  }
  Hits h;
  size_t line_no = 1;
  const char* p = text.c_str() + (pos == std::string::npos ? text.size() : pos + 1);
  const char* end_of_text = text.c_str() + text.size();
  double value[7];
  while (p < end_of_text) {
    ++line_no;
    const char* eol = static_cast<const char*>(std::memchr(p, '\n', end_of_text - p));
    if (!eol) eol = end_of_text;
    if (eol == p || (eol == p + 1 && *p == '\r')) { p = eol + 1; continue; }
    bool seen[7] = {false, false, false, false, false, false, false};
    const char* field = p;
    for (size_t c = 0; c < role.size() && field <= eol; ++c) {
      const char* comma = static_cast<const char*>(std::memchr(field, ',', eol - field));
      const char* stop = comma ? comma : eol;
      if (role[c] >= 0) {
        const int k = role[c];
        char* parsed = nullptr;
        errno = 0;
        value[k] = std::strtod(field, &parsed);
        const char* after = parsed;
        while (after < stop && (*after == '\r' || *after == ' ')) ++after;
        seen[k] = parsed != field && after == stop && errno != ERANGE && std::isfinite(value[k]);
      }
      field = stop + 1;
    }
    for (int k = 0; k < 7; ++k)
      if (!seen[k])
        throw std::runtime_error(path + ": line " + std::to_string(line_no) + ": column '" + names[k] +
                                 "' is missing or not a finite number");
    h.hit_id.push_back(static_cast<int64_t>(value[0]));
    h.x.push_back(value[1]);
    h.y.push_back(value[2]);
    h.z.push_back(value[3]);
    h.volume_id.push_back(static_cast<int64_t>(value[4]));
    h.layer_id.push_back(static_cast<int64_t>(value[5]));
    h.module_id.push_back(static_cast<int64_t>(value[6]));
    p = eol + 1;
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

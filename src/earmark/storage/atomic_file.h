#pragma once
// Files that appear whole or not at all: written under a temporary name, flushed to disk, then
// renamed over the target (rename is atomic on POSIX file systems) and the directory synced.
// A crash or kill at any moment leaves either the old file or the new one, never a mix.
#include <cstddef>
#include <string>

namespace earmark {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();  // removes the temporary file unless commit() succeeded
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Throws earmark::Error (e.g. "disk full") naming the file.
  void write(const void* data, size_t size);
  size_t bytes_written() const { return written_; }
  void commit();

 private:
  std::string path_, tmp_path_;
  int fd_ = -1;
  size_t written_ = 0;
  bool committed_ = false;
};

// fsync of a directory, so a rename inside it is durable.
void sync_directory(const std::string& dir);

// Read-only memory map of a whole file.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const unsigned char* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const unsigned char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace earmark

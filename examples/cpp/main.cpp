// Runs a model exported with torchsci.export(..., format="aoti") from C++, with no Python.
//
//   aoti_runner MODEL.pt2 INPUT.f32 D0,D1,... OUTPUT.f32
//
// INPUT.f32 holds the input tensor as raw little-endian float32 values in row-major order, with the
// shape given on the command line; the first output is written the same way to OUTPUT.f32 and its
// shape is printed on stdout ("shape 4,1").
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

static std::vector<int64_t> parse_shape(const std::string& text) {
  std::vector<int64_t> shape;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) shape.push_back(std::stoll(item));
  return shape;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: " << argv[0] << " MODEL.pt2 INPUT.f32 D0,D1,... OUTPUT.f32\n";
    return 2;
  }
  const std::vector<int64_t> shape = parse_shape(argv[3]);
  at::Tensor input = at::empty(shape, at::kFloat);
  std::ifstream raw(argv[2], std::ios::binary);
  raw.read(reinterpret_cast<char*>(input.data_ptr<float>()), input.numel() * sizeof(float));
  if (raw.gcount() != static_cast<std::streamsize>(input.numel() * sizeof(float))) {
    std::cerr << argv[2] << ": expected " << input.numel() << " float32 values for shape " << argv[3] << "\n";
    return 1;
  }

  c10::InferenceMode inference;
  torch::inductor::AOTIModelPackageLoader loader(argv[1]);
  std::vector<at::Tensor> outputs = loader.run({input});
  at::Tensor out = outputs.at(0).contiguous().to(at::kFloat);

  std::ofstream result(argv[4], std::ios::binary);
  result.write(reinterpret_cast<const char*>(out.data_ptr<float>()), out.numel() * sizeof(float));
  std::cout << "shape ";
  for (int64_t i = 0; i < out.dim(); ++i) std::cout << (i ? "," : "") << out.size(i);
  std::cout << "\n";
  return 0;
}

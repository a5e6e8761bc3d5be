// The Python module of the cpu backend's C++ loops (built by ops/cpu/extension.py): the entries of
// entries.h, each callable by position (the order of ops/cpu/*.py's calls) or by keyword.
// torch's pybind11 casters of tensors (with std::optional and std::vector) only: <torch/extension.h>
// would compile all of libtorch's C++ API into this file (twice its build time).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/csrc/utils/pybind.h>

#include "blas.h"
#include "entries.h"

namespace py = pybind11;
namespace loops = spikingrnn::loops;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("use_blas", &spikingrnn::use_blas, py::arg("allowed"));
  m.def("advise_huge_pages", &loops::advise_huge_pages, py::arg("t"));
  m.def("binary_matmul", &loops::binary_matmul, py::arg("x"), py::arg("w_tiles"), py::arg("N"), py::arg("bias"),
        py::arg("out"), py::arg("max_density"));
  m.def("pack_column_tiles", &loops::pack_column_tiles, py::arg("w"));
  m.def("unpack_bit_rows", &loops::unpack_bit_rows, py::arg("bits"), py::arg("out"));
  m.def("binary_weight_grad", &loops::binary_weight_grad, py::arg("d"), py::arg("x"), py::arg("grad_t"),
        py::arg("max_density"));
  m.def("lstm_forward_steps", &loops::lstm_forward_steps, py::arg("xp"), py::arg("t0"), py::arg("batch_sizes"),
        py::arg("h"), py::arg("c"), py::arg("w_hh_t"), py::arg("w_hh_tiles"), py::arg("w_hr_t"), py::arg("cell_mode"),
        py::arg("threshold"), py::arg("y"), py::arg("gate_bits"), py::arg("cell_store"), py::arg("cell_bits"),
        py::arg("pre_store"), py::arg("scratch"), py::arg("m"), py::arg("event_density"), py::arg("x_norm_sq"),
        py::arg("w_norm"), py::arg("kappa"), py::arg("floor"));
  m.def("lstm_backward_steps", &loops::lstm_backward_steps, py::arg("u"), py::arg("deriv"), py::arg("gates"),
        py::arg("cell_scale"), py::arg("c_prev"), py::arg("c_after"), py::arg("dy"), py::arg("t0"),
        py::arg("batch_sizes"), py::arg("w_hh"), py::arg("w_hr"), py::arg("dh_carry"), py::arg("dc_carry"),
        py::arg("d_pre"), py::arg("dh_all"), py::arg("dm_buffer"), py::arg("kind1"), py::arg("alpha1"),
        py::arg("kind2"), py::arg("alpha2"));
  m.def("lstm_cell_scan", &loops::lstm_cell_scan, py::arg("gates"), py::arg("signs"), py::arg("c_start"),
        py::arg("t0"), py::arg("batch_sizes"), py::arg("cell_mode"), py::arg("threshold"), py::arg("cells"));
  m.def("set_gate_signs", &loops::set_gate_signs, py::arg("u"), py::arg("entries"), py::arg("offsets"),
        py::arg("t0"));
  m.def("gru_forward_steps", &loops::gru_forward_steps, py::arg("xp"), py::arg("t0"), py::arg("batch_sizes"),
        py::arg("h"), py::arg("w_hh_t"), py::arg("w_hh_tiles"), py::arg("b_hh"), py::arg("y"), py::arg("gate_bits"),
        py::arg("pre_store"), py::arg("scratch"), py::arg("event_density"));
  m.def("gru_backward_steps", &loops::gru_backward_steps, py::arg("u"), py::arg("deriv"), py::arg("gates"),
        py::arg("h_prev"), py::arg("dy"), py::arg("t0"), py::arg("batch_sizes"), py::arg("w_hh"), py::arg("dh_carry"),
        py::arg("d_hidden_pre"), py::arg("d_input_pre"), py::arg("kind1"), py::arg("alpha1"), py::arg("kind2"),
        py::arg("alpha2"));
  m.def("sigmoid_lstm_forward_steps", &loops::sigmoid_lstm_forward_steps, py::arg("xp"), py::arg("t0"),
        py::arg("batch_sizes"), py::arg("h"), py::arg("c"), py::arg("w_hh_t"), py::arg("w_hh_tiles"),
        py::arg("w_hr_t"), py::arg("threshold"), py::arg("y"), py::arg("gate_store"), py::arg("cell_store"),
        py::arg("scratch"), py::arg("m"), py::arg("event_density"));
  m.def("sigmoid_lstm_backward_steps", &loops::sigmoid_lstm_backward_steps, py::arg("gates"), py::arg("c_prev"),
        py::arg("c_after"), py::arg("spike_deriv"), py::arg("dy"), py::arg("t0"), py::arg("batch_sizes"),
        py::arg("w_hh"), py::arg("w_hr"), py::arg("dh_carry"), py::arg("dc_carry"), py::arg("d_pre"),
        py::arg("dh_all"), py::arg("dm_buffer"), py::arg("threshold"), py::arg("kind"), py::arg("alpha"));
  m.def("sigmoid_gru_forward_steps", &loops::sigmoid_gru_forward_steps, py::arg("xp"), py::arg("t0"),
        py::arg("batch_sizes"), py::arg("h"), py::arg("s"), py::arg("w_hh_t"), py::arg("w_hh_tiles"), py::arg("b_hh"),
        py::arg("threshold"), py::arg("y"), py::arg("gate_store"), py::arg("state_store"), py::arg("scratch"),
        py::arg("event_density"));
  m.def("sigmoid_gru_backward_steps", &loops::sigmoid_gru_backward_steps, py::arg("gates"), py::arg("s_prev"),
        py::arg("s_after"), py::arg("spike_deriv"), py::arg("dy"), py::arg("t0"), py::arg("batch_sizes"),
        py::arg("w_hh"), py::arg("dh_carry"), py::arg("ds_carry"), py::arg("d_hidden_pre"), py::arg("d_input_pre"),
        py::arg("threshold"), py::arg("kind"), py::arg("alpha"));
  m.def("leaky_rnn_forward_steps", &loops::leaky_rnn_forward_steps, py::arg("xp"), py::arg("t0"),
        py::arg("batch_sizes"), py::arg("h"), py::arg("v"), py::arg("w_hh_t"), py::arg("w_hh_tiles"), py::arg("leak"),
        py::arg("threshold"), py::arg("y"), py::arg("state_store"), py::arg("scratch"), py::arg("event_density"));
  m.def("leaky_rnn_backward_steps", &loops::leaky_rnn_backward_steps, py::arg("v_after"), py::arg("spike_deriv"),
        py::arg("dy"), py::arg("t0"), py::arg("batch_sizes"), py::arg("w_hh"), py::arg("leak"), py::arg("dh_carry"),
        py::arg("dv_carry"), py::arg("d_pre"), py::arg("threshold"), py::arg("kind"), py::arg("alpha"));
  m.def("rnn_forward_steps", &loops::rnn_forward_steps, py::arg("xp"), py::arg("t0"), py::arg("batch_sizes"),
        py::arg("h"), py::arg("w_hh_t"), py::arg("w_hh_tiles"), py::arg("y"), py::arg("pre_store"),
        py::arg("event_density"));
  m.def("rnn_backward_steps", &loops::rnn_backward_steps, py::arg("scale"), py::arg("dy"), py::arg("t0"),
        py::arg("batch_sizes"), py::arg("w_hh"), py::arg("dh_carry"), py::arg("d_pre"));
}
